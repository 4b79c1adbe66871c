package httpserver

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

func start(t *testing.T, opts Options, h http.Handler) (addr string, cancel func(), done chan error) {
	t.Helper()
	srv, err := New(opts, h)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelFn := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(cancelFn)
	return ln.Addr().String(), cancelFn, done
}

func TestTLS13OnlyAndHTTP2(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "svc", "127.0.0.1")
	var logs syncbuf.Buffer
	addr, _, _ := start(t, Options{TLSCert: pair.CertFile, TLSKey: pair.KeyFile,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) }))

	// A TLS 1.2-only client is refused.
	_, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Pool, MaxVersion: tls.VersionTLS12, ServerName: "127.0.0.1"})
	if err == nil {
		t.Fatal("TLS 1.2 client was accepted")
	}
	// TLS 1.3 works and negotiates HTTP/2.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(), ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + addr + "/hello?code=secret-sso-code")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.TLS.Version != tls.VersionTLS13 || string(body) != "HTTP/2.0" {
		t.Fatalf("version %x proto %s", resp.TLS.Version, body)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != HSTS {
		t.Errorf("HSTS = %q", got)
	}
	out := logs.String()
	if !strings.Contains(out, "path=/hello") || !strings.Contains(out, "status=200") {
		t.Fatalf("request not logged: %s", out)
	}
	if strings.Contains(out, "secret-sso-code") {
		t.Fatalf("query string logged: %s", out)
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "svc", "127.0.0.1")
	entered := make(chan struct{})
	release := make(chan struct{})
	addr, cancel, done := start(t, Options{TLSCert: pair.CertFile, TLSKey: pair.KeyFile, ShutdownTimeout: 10 * time.Second},
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			close(entered)
			<-release
			_, _ = io.WriteString(w, "finished")
		}))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}}
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Get("https://" + addr + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-entered
	cancel()
	// The server is draining: it must not have returned yet, and it must
	// refuse new connections.
	select {
	case err := <-done:
		t.Fatalf("server returned before the in-flight request finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatal("new connection accepted while draining")
	}
	close(release)
	r := <-res
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q %v", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestDrainTimeoutClosesStragglers(t *testing.T) {
	entered := make(chan struct{})
	addr, cancel, done := start(t, Options{Plain: true, ShutdownTimeout: 100 * time.Millisecond},
		http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
		}))
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "shutdown") {
			t.Fatalf("want shutdown timeout error, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop after its drain timeout")
	}
}

func TestNeedsTLSUnlessPlain(t *testing.T) {
	if _, err := New(Options{Addr: ":0"}, http.NotFoundHandler()); err == nil {
		t.Fatal("server without TLS material accepted")
	}
	addr, _, _ := start(t, Options{Plain: true}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "plain")
	}))
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("plain mode: %d", resp.StatusCode)
	}
	// HSTS over plain HTTP is meaningless (browsers ignore it); the L7
	// proxy in front of a plain service speaks for it.
	if resp.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS sent over plain HTTP")
	}
}

// TestProxyProtocol: behind a trusted proxy the handler sees the client
// the PROXY header names; a direct connection from the same peer still
// works; an untrusted peer's forged header is not believed.
func TestProxyProtocol(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "svc", "127.0.0.1")
	remote := func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.RemoteAddr) }
	get := func(addr string, header []byte) (string, error) {
		tr := &http.Transport{TLSClientConfig: pki.ClientConfig(), ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, a)
				if err == nil && header != nil {
					_, err = c.Write(header)
				}
				return c, err
			}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	v2 := proxyproto.AppendV2(nil, netip.MustParseAddrPort("203.0.113.50:4444"), netip.MustParseAddrPort("127.0.0.1:443"))

	addr, _, _ := start(t, Options{TLSCert: pair.CertFile, TLSKey: pair.KeyFile,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, http.HandlerFunc(remote))
	if got, err := get(addr, v2); err != nil || got != "203.0.113.50:4444" {
		t.Errorf("through the trusted proxy: %q %v", got, err)
	}
	if got, err := get(addr, nil); err != nil || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("direct from the trusted peer: %q %v", got, err)
	}
	untrusted, _, _ := start(t, Options{TLSCert: pair.CertFile, TLSKey: pair.KeyFile,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, http.HandlerFunc(remote))
	if got, err := get(untrusted, v2); err == nil {
		t.Errorf("a forged header from an untrusted peer was accepted: %q", got)
	}
}
