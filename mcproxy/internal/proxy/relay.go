package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// relayBufSize is the copy buffer per direction.
const relayBufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// dialTimeout bounds connecting to a backend.
const dialTimeout = 10 * time.Second

// relayL4 connects to the backend, sends the PROXY header and the
// recorded ClientHello, then copies both ways until both sides are done.
func (s *Server) relayL4(ctx context.Context, ls *listenerState, rt route.Route, rm *routeMetrics, c *trackedConn, hello []byte) {
	start := time.Now()
	d := net.Dialer{Timeout: dialTimeout}
	b, err := d.DialContext(ctx, "tcp", rt.Backend)
	if err != nil {
		s.log.Warn("l4: backend unreachable", "listener", ls.Name, "host", rt.Hostname, "backend", rt.Backend, "client", c.client, "err", err)
		rm.done(rm.backendError, start)
		reset(c)
		return
	}
	first := hello
	if rt.SendProxyProtocol {
		first = append(proxyproto.AppendV2(make([]byte, 0, 64+len(hello)), c.client, addrPort(c.LocalAddr())), hello...)
	}
	if _, err := b.Write(first); err != nil {
		s.log.Warn("l4: write to backend", "backend", rt.Backend, "err", err)
		rm.done(rm.backendError, start)
		b.Close() //nolint:errcheck,gosec // failing
		reset(c)
		return
	}
	ls.m.bytesIn.Add(float64(len(hello)))
	up, down := relay(c, b, s.opts.IdleTimeout)
	ls.m.bytesIn.Add(float64(up))
	ls.m.bytesOut.Add(float64(down))
	rm.done(rm.ok, start)
	s.log.Debug("l4: done", "listener", ls.Name, "host", rt.Hostname, "client", c.client, "in", up, "out", down, "duration", time.Since(start))
}

type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// relay copies client↔backend with half-close: EOF from one side becomes
// a FIN to the other and the opposite direction keeps flowing. The
// connection pair is closed once both directions end, on an error, or
// when neither side has sent anything for idle.
func relay(client, backend net.Conn, idle time.Duration) (up, down int64) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()  //nolint:errcheck,gosec // relay over
			backend.Close() //nolint:errcheck,gosec // relay over
		})
	}
	wg.Go(func() {
		up = copyIdle(backend, client, idle, &last, closeBoth)
	})
	down = copyIdle(client, backend, idle, &last, closeBoth)
	wg.Wait()
	closeBoth()
	return up, down
}

func copyIdle(dst, src net.Conn, idle time.Duration, last *atomic.Int64, abort func()) int64 {
	bp, _ := bufPool.Get().(*[]byte) // the pool only holds *[]byte
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		src.SetReadDeadline(time.Now().Add(idle)) //nolint:errcheck,gosec // a broken conn fails the read
		nr, rerr := src.Read(buf)
		if nr > 0 {
			last.Store(time.Now().UnixNano())
			dst.SetWriteDeadline(time.Now().Add(idle)) //nolint:errcheck,gosec // a broken conn fails the write
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				abort()
				return n
			}
		}
		if rerr == nil {
			continue
		}
		var ne net.Error
		if errors.As(rerr, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
			// The other direction is active; this one is just quiet.
			continue
		}
		if errors.Is(rerr, io.EOF) {
			if hc, ok := dst.(halfCloser); ok {
				if hc.CloseWrite() == nil {
					return n
				}
			}
		}
		abort()
		return n
	}
}
