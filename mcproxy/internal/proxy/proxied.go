package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// An L7 route with send_proxy_protocol tells its backend who the client is
// with a PROXY v2 header, which names the client of a whole connection.
// So the backend connections of such a route are never shared between
// clients (haproxy marks them private for the same reason): each client
// connection gets its own, opened on its first request, each starting with
// the header, and closed with it.

// clientConnKey keys a client connection's *clientConn in its context.
type clientConnKey struct{}

// clientConn is what a client connection of an L7 front keeps for routes
// that send PROXY headers: its addresses and its own backend transports.
type clientConn struct {
	client, local netip.AddrPort
	backends      *backendTransport

	mu         sync.Mutex
	closed     bool
	transports map[connTransportKey]*http.Transport
}

// connTransportKey names one of a client connection's transports: its
// kind (h1, h2c, tls) and, for tls, the backend's.
type connTransportKey struct {
	kind string
	tls  tlsKey
}

func newClientConn(c net.Conn, backends *backendTransport) *clientConn {
	return &clientConn{
		client: addrPort(c.RemoteAddr()), local: addrPort(c.LocalAddr()), backends: backends,
		transports: map[connTransportKey]*http.Transport{},
	}
}

// transport is the connection's own transport for rt (the one
// backendTransport would pick, with connections that start with a PROXY
// header naming this client).
func (cc *clientConn) transport(rt route.Route, upgrade bool) (*http.Transport, error) {
	key := connTransportKey{kind: "h1"}
	switch {
	case rt.BackendTLS:
		key = connTransportKey{kind: "tls", tls: tlsKeyOf(rt)}
	case rt.BackendProtocol == route.H2C && !upgrade:
		key.kind = "h2c"
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed {
		return nil, fmt.Errorf("proxy: client connection of %s closed", rt.Key())
	}
	if t, ok := cc.transports[key]; ok {
		return t, nil
	}
	var t *http.Transport
	switch {
	case rt.BackendTLS:
		// The route's verified configuration and session cache, shared
		// with the routes of the same backend.
		tb, err := cc.backends.tlsUpstream(rt)
		if err != nil {
			return nil, err
		}
		t = newTransport(protocols(true, rt.BackendProtocol == route.Auto, false))
		t.TLSClientConfig = tb.cfg
	case key.kind == "h2c":
		t = newTransport(protocols(false, false, true))
	default:
		t = newTransport(protocols(true, false, false))
	}
	t.DialContext = cc.dial
	// One client's requests: a few connections are plenty to keep.
	t.MaxIdleConnsPerHost = 4
	cc.transports[key] = t
	return t, nil
}

// dial opens a backend connection and sends the PROXY header first (under
// TLS backends, the header precedes the handshake, as on L4).
func (cc *clientConn) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(proxyproto.AppendV2(make([]byte, 0, 64), cc.client, cc.local)); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("proxy: send PROXY header to %s: %w", addr, err)
	}
	return c, nil
}

// close closes the connection's idle backend connections and refuses new
// ones; requests in flight finish on theirs.
func (cc *clientConn) close() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.closed = true
	for _, t := range cc.transports {
		t.CloseIdleConnections()
	}
}
