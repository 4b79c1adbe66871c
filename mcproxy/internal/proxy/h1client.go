package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// A plain HTTP/1.1 client for L7 backends (backend_protocol http1, plain or
// TLS), used by the fast path (fast.go) and by the net/http path for
// requests without a body (forward.go): the goroutine serving the request
// writes it to a pooled connection and reads the answer itself, where
// http.Transport hands each request to two goroutines of its own per
// connection and waits for them on channels.

// backendRequest is a request on its way to an HTTP/1.1 backend.
type backendRequest struct {
	// write writes the whole request (head and body).
	write func(w *bufio.Writer)
	// head is set for HEAD (whose answer has no body).
	head bool
	// on1xx relays an informational answer.
	on1xx func(res *http.Response) error
	// replayable is set for a request that may be sent twice (GET, HEAD,
	// OPTIONS, as http.Transport decides).
	replayable bool
}

// replayable reports whether a request in method may be sent again after
// a reused connection failed under it.
func replayable(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// backendRoundTrip writes req to a backend connection from acquire and
// reads the final answer's head, relaying 1xx answers. A backend may close
// a connection while it sits idle in the pool: a replayable request that
// fails on a reused connection before any answer byte is sent once more on
// a new one (acquire(true); the whole request is in memory), and any other
// request first checks that the reused connection is still open, so it is
// never sent twice. The answer's body is read from the returned
// connection, which the caller keeps or closes.
//
// When ctx ends (the client went away) the connection's reads and writes
// fail at once. The caller calls stop once done with the connection: a
// false from it means ctx ended meanwhile, and the connection must not be
// kept.
func backendRoundTrip(ctx context.Context, acquire func(fresh bool) (*backendConn, error), req backendRequest) (
	res *http.Response, b *backendConn, stop func() bool, err error,
) {
	for attempt := 0; ; attempt++ {
		b, err := acquire(attempt > 0)
		if err == nil && b.reused && !req.replayable && !b.open() {
			b.close()
			b, err = acquire(true)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		stop := noStop
		if ctx.Done() != nil {
			stop = context.AfterFunc(ctx, func() {
				b.c.SetDeadline(time.Unix(1, 0)) //nolint:errcheck,gosec // wakes the reads and writes
			})
		}
		res, err := b.send(req)
		if err == nil {
			return res, b, stop, nil
		}
		stop()
		b.close()
		var stale *staleConnError
		if attempt > 0 || !req.replayable || ctx.Err() != nil || !errors.As(err, &stale) {
			return nil, nil, nil, err
		}
	}
}

func noStop() bool { return true }

// writeFields writes a header's fields as they are, unsorted (net/http's
// Header.Write sorts them, at a tenth of the cost of a request). A value
// can hold no line break here (net/http's parsers refuse them), but one
// would still be written as a space, as Header.Write does.
func writeFields(w *bufio.Writer, h http.Header) {
	for k, vv := range h {
		for _, v := range vv {
			_, _ = w.WriteString(k)
			_, _ = w.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			_, _ = w.WriteString(strings.TrimSpace(v))
			_, _ = w.WriteString("\r\n")
		}
	}
}

// staleConnError is a failure of a reused backend connection before any
// byte of an answer.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string { return "reused backend connection: " + e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

// Requests ReadResponse is told about (it needs the method only).
var (
	headRequest  = &http.Request{Method: http.MethodHead}
	otherRequest = &http.Request{Method: http.MethodGet}
)

func (b *backendConn) send(br backendRequest) (*http.Response, error) {
	w := b.bw
	br.write(w)
	if err := w.Flush(); err != nil {
		if b.reused {
			return nil, &staleConnError{err}
		}
		return nil, fmt.Errorf("write to backend: %w", err)
	}
	req := otherRequest
	if br.head {
		req = headRequest
	}
	if _, err := b.br.Peek(1); err != nil {
		if b.reused && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return nil, &staleConnError{err}
		}
		return nil, fmt.Errorf("read from backend: %w", err)
	}
	for informational := 0; ; informational++ {
		res, err := http.ReadResponse(b.br, req)
		if err != nil {
			return nil, fmt.Errorf("read from backend: %w", err)
		}
		switch {
		case res.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("backend switched protocols on a request that asked for no upgrade")
		case res.StatusCode < 200:
			if informational == maxInformational {
				return nil, errors.New("too many 1xx answers from the backend")
			}
			if err := br.on1xx(res); err != nil {
				return nil, err
			}
		default:
			return res, nil
		}
	}
}

// backendConn is an HTTP/1.1 connection to a backend.
type backendConn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// reused is set once the connection has answered a request.
	reused bool
}

// open reports whether an idle connection is still open: the socket has
// nothing to read (no end of stream, no stray bytes), which a peek that
// does not wait tells without taking anything from it.
func (b *backendConn) open() bool {
	if b.br.Buffered() > 0 {
		return false
	}
	raw := b.c
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return true // cannot tell; the send finds out
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var one [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN)
		return true
	})
	return err == nil && open
}

func (b *backendConn) close() {
	b.c.Close() //nolint:errcheck,gosec // done with it
}

// acquire is an idle connection of p, or a new one (always when fresh).
func (p *backendPool) acquire(fresh bool) (*backendConn, error) {
	if !fresh {
		if b := p.get(); b != nil {
			return b, nil
		}
	}
	return p.dial(nil)
}

// backendPool holds a front's idle HTTP/1.1 backend connections, newest
// first out.
type backendPool struct {
	addr string
	tls  *tls.Config // nil for plain TCP

	mu     sync.Mutex
	idle   []*backendConn
	closed bool
}

func newBackendPool(rt route.Route, b *backendTransport) (*backendPool, error) {
	p := &backendPool{addr: rt.Backend}
	if rt.BackendTLS {
		up, err := b.tlsUpstream(rt)
		if err != nil {
			return nil, err
		}
		p.tls = up.cfg.Clone() // shares the session cache
		p.tls.NextProtos = []string{"http/1.1"}
	}
	return p, nil
}

func (p *backendPool) get() *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		b := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(b.idleAt) < backendIdleTimeout {
			return b
		}
		b.close()
	}
	return nil
}

func (p *backendPool) put(b *backendConn) {
	b.idleAt = time.Now()
	p.mu.Lock()
	if !p.closed && len(p.idle) < backendIdlePerHost {
		p.idle = append(p.idle, b)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	b.close()
}

// close closes the idle connections; connections in use are closed when
// they come back.
func (p *backendPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, b := range p.idle {
		b.close()
	}
	p.idle = nil
}

// dial opens a backend connection; first, when set, writes what precedes
// the backend protocol (a PROXY header).
func (p *backendPool) dial(first func(net.Conn) error) (*backendConn, error) {
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	c, err := d.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if first != nil {
		if err := first(c); err != nil {
			c.Close() //nolint:errcheck,gosec // failing
			return nil, fmt.Errorf("send PROXY header to %s: %w", p.addr, err)
		}
	}
	if p.tls != nil {
		tc := tls.Client(c, p.tls)
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.Close() //nolint:errcheck,gosec // failed handshake
			return nil, err
		}
		c = tc
	}
	return &backendConn{c: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}
