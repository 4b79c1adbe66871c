package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcproxy/internal/proxyproto"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
	"git.metacircular.net/metacircular/mcproxy/internal/sni"
)

// trackedConn is an accepted connection the drain can see and force
// closed. Close removes it from the set exactly once.
type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
	// client is the real client address (PROXY header or peer).
	client netip.AddrPort
}

func (s *Server) track(c net.Conn) *trackedConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	tc := &trackedConn{Conn: c, s: s, client: addrPort(c.RemoteAddr())}
	s.conns[tc] = struct{}{}
	s.open.Add(1)
	return tc
}

func (c *trackedConn) untrack() {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
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
func (s *Server) handle(ctx context.Context, l Listener, c *trackedConn, front *l7Front) {
	s.metrics.connections.WithLabelValues(l.Name).Inc()
	peer := c.client
	if l.AcceptProxyProtocol {
		if !trusted(l.TrustedProxies, peer.Addr()) {
			s.log.Info("reset: PROXY header from an untrusted peer", "listener", l.Name, "peer", peer)
			s.metrics.rejects.WithLabelValues(l.Name, "untrusted_proxy").Inc()
			reset(c)
			return
		}
		if err := c.SetReadDeadline(time.Now().Add(s.opts.ProxyHeaderTimeout)); err != nil {
			reset(c)
			return
		}
		h, err := proxyproto.Read(c.Conn)
		if err != nil {
			s.log.Info("reset: bad PROXY header", "listener", l.Name, "peer", peer, "err", err)
			s.metrics.rejects.WithLabelValues(l.Name, "proxy_header").Inc()
			reset(c)
			return
		}
		if !h.Local {
			c.client = h.Source
		}
	}
	client := c.client
	if d := s.fw.Check(client.Addr()); d.Blocked {
		s.log.Info("firewall: reset", "listener", l.Name, "client", client, "reason", d.Reason, "rule", d.Detail)
		s.metrics.firewallDrops.WithLabelValues(d.Reason).Inc()
		reset(c)
		return
	}
	hello, err := sni.Peek(ctx, c.Conn, s.opts.HelloTimeout)
	if err != nil {
		s.log.Debug("reset: no client hello", "listener", l.Name, "client", client, "err", err)
		s.metrics.rejects.WithLabelValues(l.Name, "client_hello").Inc()
		reset(c)
		return
	}
	rt, ok := s.table.Load().Lookup(l.Name, hello.ServerName)
	if !ok {
		s.log.Info("reset: unknown server name", "listener", l.Name, "client", client, "sni", hello.ServerName)
		s.metrics.rejects.WithLabelValues(l.Name, "unknown_sni").Inc()
		reset(c)
		return
	}
	if rt.Mode == route.L4 {
		s.relayL4(ctx, l, rt, c, hello.Raw)
		return
	}
	front.hand(c, rt, hello.Raw)
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
// connection, so crypto/tls sees the stream from its first byte.
type replayConn struct {
	*trackedConn
	prefix []byte
	route  route.Route
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
