package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
	"git.metacircular.net/metacircular/mcproxy/internal/sni"
)

// trackedConn is an accepted connection its listener's drain can see and
// force closed. Close removes it from the set exactly once.
type trackedConn struct {
	net.Conn
	s    *Server
	ls   *listenerState
	once sync.Once
	// client is the real client address (PROXY header or peer).
	client netip.AddrPort
	// front is the L7 front serving the connection (nil before, and on
	// L4); guarded by ls.mu.
	front *l7Front
}

func (s *Server) track(ls *listenerState, c net.Conn) *trackedConn {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return nil
	}
	tc := &trackedConn{Conn: c, s: s, ls: ls, client: addrPort(c.RemoteAddr())}
	ls.conns[tc] = struct{}{}
	ls.open.Add(1)
	s.open.Add(1)
	return tc
}

func (c *trackedConn) untrack() {
	c.once.Do(func() {
		c.ls.mu.Lock()
		delete(c.ls.conns, c)
		c.ls.mu.Unlock()
		c.ls.open.Add(-1)
		c.s.open.Add(-1)
	})
}

func (c *trackedConn) Close() error {
	c.untrack()
	return c.Conn.Close()
}

// RemoteAddr is the real client, so logs and X-Forwarded-For name it.
func (c *trackedConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.client) }

// CloseWrite half-closes the client side of an L4 relay.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// reset aborts a connection with a TCP RST and nothing else.
func reset(c net.Conn) {
	if tc, ok := c.(*trackedConn); ok {
		tc.untrack()
		c = tc.Conn
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetLinger(0) //nolint:errcheck,gosec // best effort; Close follows
	}
	c.Close() //nolint:errcheck,gosec // aborting
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// handle runs one connection through PROXY header, firewall, SNI and
// routing, then hands it to the L4 relay or the L7 server.
func (s *Server) handle(ctx context.Context, ls *listenerState, c *trackedConn) {
	ls.m.connections.Inc()
	peer := c.client
	if ls.AcceptProxyProtocol {
		if !trusted(ls.TrustedProxies, peer.Addr()) {
			s.log.Info("reset: PROXY header from an untrusted peer", "listener", ls.Name, "peer", peer)
			ls.m.untrustedProxy.Inc()
			reset(c)
			return
		}
		if err := c.SetReadDeadline(time.Now().Add(s.opts.ProxyHeaderTimeout)); err != nil {
			reset(c)
			return
		}
		h, err := proxyproto.Read(c.Conn)
		if err != nil {
			s.log.Info("reset: bad PROXY header", "listener", ls.Name, "peer", peer, "err", err)
			ls.m.proxyHeader.Inc()
			reset(c)
			return
		}
		if !h.Local {
			c.client = h.Source
		}
	}
	client := c.client
	if d := s.fw.Check(client.Addr()); d.Blocked {
		s.log.Info("firewall: reset", "listener", ls.Name, "client", client, "reason", d.Reason, "rule", d.Detail)
		s.metrics.drop(d.Reason).Inc()
		reset(c)
		return
	}
	hello, err := sni.Peek(ctx, c.Conn, s.opts.HelloTimeout)
	if err != nil {
		s.log.Debug("reset: no client hello", "listener", ls.Name, "client", client, "err", err)
		ls.m.clientHello.Inc()
		reset(c)
		return
	}
	rt, rm, ok := s.routing.Load().lookup(ls.Name, hello.ServerName)
	if !ok {
		s.log.Info("reset: unknown server name", "listener", ls.Name, "client", client, "sni", hello.ServerName)
		ls.m.unknownSNI.Inc()
		reset(c)
		return
	}
	if rt.Mode == route.L4 {
		s.relayL4(ctx, ls, rt, rm, c, hello.Raw)
		return
	}
	s.hand(ls, c, rt, hello.Raw)
}

func trusted(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// replayConn serves the recorded ClientHello bytes before the rest of the
// connection, so crypto/tls sees the stream from its first byte. Once
// out is set (an HTTP/2 connection, after its handshake) its writes go
// through a coalescer.
type replayConn struct {
	*trackedConn
	prefix []byte
	out    *coalescer
}

func (c *replayConn) Write(p []byte) (int, error) {
	if c.out != nil {
		return c.out.Write(p)
	}
	return c.trackedConn.Write(p)
}

// Close delivers what is still pending (the TLS close_notify, a GOAWAY)
// before closing.
func (c *replayConn) Close() error {
	if c.out != nil {
		_ = c.out.drain()
	}
	return c.trackedConn.Close()
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.trackedConn.Read(p)
}

var errClosedListener = errors.New("proxy: l7 listener closed")
