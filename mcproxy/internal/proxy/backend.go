package proxy

import (
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
	tls map[string]*http.Transport
}

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
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

func newBackendTransport() *backendTransport {
	return &backendTransport{
		h1:  newTransport(protocols(true, false, false)),
		h2c: newTransport(protocols(false, false, true)),
		tls: map[string]*http.Transport{},
	}
}

func (b *backendTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	info, _ := r.Context().Value(routeKey{}).(*requestInfo)
	if info == nil {
		return nil, errors.New("proxy: request without a route")
	}
	if info.route.SendProxyProtocol {
		cc, ok := r.Context().Value(clientConnKey{}).(*clientConn)
		if !ok {
			return nil, errors.New("proxy: PROXY route without its client connection")
		}
		t, err := cc.transport(info.route, isUpgrade(r.Header))
		if err != nil {
			return nil, err
		}
		return t.RoundTrip(r)
	}
	switch rt := info.route; {
	case rt.BackendTLS:
		t, err := b.tlsTransport(rt)
		if err != nil {
			return nil, err
		}
		return t.RoundTrip(r)
	case rt.BackendProtocol == route.H2C && !isUpgrade(r.Header):
		return b.h2c.RoundTrip(r)
	default:
		return b.h1.RoundTrip(r)
	}
}

// isUpgrade reports whether a request asks to switch protocols.
func isUpgrade(h http.Header) bool {
	return hasToken(h["Connection"], "upgrade") && h.Get("Upgrade") != ""
}

func tlsKey(rt route.Route) string {
	return rt.BackendCA + "\x00" + rt.BackendServerName + "\x00" + rt.Backend + "\x00" + rt.BackendProtocol
}

func (b *backendTransport) tlsTransport(rt route.Route) (*http.Transport, error) {
	key := tlsKey(rt)
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.tls[key]; ok {
		return t, nil
	}
	cfg, err := tlsutil.ClientConfig(rt.BackendCA)
	if err != nil {
		return nil, fmt.Errorf("proxy: backend tls for %s: %w", rt.Key(), err)
	}
	cfg.ServerName = rt.BackendServerName
	if cfg.ServerName == "" {
		cfg.ServerName = hostOnly(rt.Backend)
	}
	t := newTransport(protocols(true, rt.BackendProtocol == route.Auto, false))
	t.TLSClientConfig = cfg
	b.tls[key] = t
	return t, nil
}

// prune drops the TLS transports no route of t uses any more and closes
// their idle connections; requests in flight on them finish.
func (b *backendTransport) prune(t *route.Table) {
	keep := map[string]bool{}
	for _, rt := range t.Routes() {
		if rt.Mode == route.L7 && rt.BackendTLS {
			keep[tlsKey(rt)] = true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, tr := range b.tls {
		if !keep[k] {
			tr.CloseIdleConnections()
			delete(b.tls, k)
		}
	}
}
