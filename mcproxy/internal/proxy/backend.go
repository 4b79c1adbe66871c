package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/tlsutil"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// backendTransport speaks to L7 backends in the route's backend_protocol,
// never in the one the client happened to speak: HTTP/1.1 or h2c over
// plain TCP, or over TLS (BackendTLS) HTTP/1.1 alone or, with auto, what
// ALPN picks from h2 and http/1.1. Upgrade requests (websockets) always go
// over HTTP/1.1: HTTP/2 has no Upgrade.
//
// No transport asks for compression: the client's Accept-Encoding is
// passed on as it is (none when it sent none), and an encoded answer
// reaches the client still encoded, with its Content-Encoding. A
// transport that added "Accept-Encoding: gzip" would decompress in the
// proxy, changing the answer's bytes and length and spending the
// proxy's CPU on every compressed body.
type backendTransport struct {
	h1  *http.Transport
	h2c *http.Transport

	mu  sync.Mutex
	tls map[tlsKey]*tlsUpstream
}

// tlsUpstream is what the routes of one tlsKey share: the verified client
// configuration (with its session cache, so a new connection to the
// backend resumes instead of a full handshake, as nginx's
// proxy_ssl_session_reuse does) and the transport with its pool.
type tlsUpstream struct {
	cfg *tls.Config
	t   *http.Transport
}

// backendIdlePerHost is how many idle connections to one backend a
// transport keeps. It must cover the requests in flight at once, or every
// answer beyond it closes its backend connection and the next request
// dials a new one: at net/http's default of 2 (and the 64 mc-proxy had
// before) 16 HTTP/2 clients with 10 streams each had the proxy dialling
// its backend for a tenth of its CPU time. One HTTP/2 client alone may
// have 250 streams in flight (net/http's MaxConcurrentStreams). Idle
// connections cost the backend a socket each and close after
// backendIdleTimeout.
const backendIdlePerHost = 256

// backendIdleTimeout closes a pooled backend connection unused this long.
const backendIdleTimeout = 90 * time.Second

func protocols(h1, h2, h2c bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(h1)
	p.SetHTTP2(h2)
	p.SetUnencryptedHTTP2(h2c)
	return p
}

func newTransport(p *http.Protocols) *http.Transport {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:         dialer.DialContext,
		Protocols:           p,
		DisableCompression:  true,
		MaxIdleConnsPerHost: backendIdlePerHost,
		IdleConnTimeout:     backendIdleTimeout,
	}
}

// newH2CTransport is newTransport for h2c: the requests in flight to a
// backend share one connection, whose writes are coalesced.
func newH2CTransport() *http.Transport {
	t := newTransport(protocols(false, false, true))
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &coalescedConn{Conn: c, out: newCoalescer(c)}, nil
	}
	return t
}

// dialTLSCoalesced dials a TLS backend for an auto route and, when ALPN
// picked h2, coalesces the connection's writes below TLS.
func dialTLSCoalesced(cfg *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &coalescedConn{Conn: raw}
		tc := tls.Client(cc, cfg)
		hctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			raw.Close() //nolint:errcheck,gosec // failed handshake
			return nil, err
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			cc.out = newCoalescer(raw)
		}
		return tc, nil
	}
}

func newBackendTransport() *backendTransport {
	return &backendTransport{
		h1:  newTransport(protocols(true, false, false)),
		h2c: newH2CTransport(),
		tls: map[tlsKey]*tlsUpstream{},
	}
}

// transportFor is the transport a request of rt takes: the client
// connection's own for a route that sends PROXY headers (from ctx, the
// request's), else the shared one of the route's backend protocol.
func (b *backendTransport) transportFor(ctx context.Context, rt route.Route, upgrade bool) (http.RoundTripper, error) {
	if rt.SendProxyProtocol {
		cc, ok := ctx.Value(clientConnKey{}).(*clientConn)
		if !ok {
			return nil, errors.New("proxy: PROXY route without its client connection")
		}
		return cc.transport(rt, upgrade)
	}
	switch {
	case rt.BackendTLS:
		tb, err := b.tlsUpstream(rt)
		if err != nil {
			return nil, err
		}
		return tb.t, nil
	case rt.BackendProtocol == route.H2C && !upgrade:
		return b.h2c, nil
	default:
		return b.h1, nil
	}
}

// tlsKey identifies a TLS backend transport: routes that agree on all of
// it share one (and its pool).
type tlsKey struct{ ca, serverName, backend, protocol string }

func tlsKeyOf(rt route.Route) tlsKey {
	return tlsKey{rt.BackendCA, rt.BackendServerName, rt.Backend, rt.BackendProtocol}
}

// tlsUpstream is the TLS configuration and transport of rt's backend,
// made on first use.
func (b *backendTransport) tlsUpstream(rt route.Route) (*tlsUpstream, error) {
	key := tlsKeyOf(rt)
	b.mu.Lock()
	defer b.mu.Unlock()
	if tb, ok := b.tls[key]; ok {
		return tb, nil
	}
	cfg, err := tlsutil.ClientConfig(rt.BackendCA)
	if err != nil {
		return nil, fmt.Errorf("proxy: backend tls for %s: %w", rt.Key(), err)
	}
	cfg.ServerName = rt.BackendServerName
	if cfg.ServerName == "" {
		cfg.ServerName = hostOnly(rt.Backend)
	}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(backendIdlePerHost)
	t := newTransport(protocols(true, rt.BackendProtocol == route.Auto, false))
	t.TLSClientConfig = cfg
	if rt.BackendProtocol == route.Auto {
		// The transport no longer dials TLS itself: offer what it would.
		acfg := cfg.Clone()
		acfg.NextProtos = []string{"h2", "http/1.1"}
		t.DialTLSContext = dialTLSCoalesced(acfg)
	}
	tb := &tlsUpstream{cfg: cfg, t: t}
	b.tls[key] = tb
	return tb, nil
}

// prune drops the TLS transports no route of t uses any more and closes
// their idle connections; requests in flight on them finish.
func (b *backendTransport) prune(t *route.Table) {
	keep := map[tlsKey]bool{}
	for _, rt := range t.Routes() {
		if rt.Mode == route.L7 && rt.BackendTLS {
			keep[tlsKeyOf(rt)] = true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, tb := range b.tls {
		if !keep[k] {
			tb.t.CloseIdleConnections()
			delete(b.tls, k)
		}
	}
}
