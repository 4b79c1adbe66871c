package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// TestCertificateReload: replacing an L7 route's certificate files (as a
// renewal does) changes the certificate served to new connections without
// a restart or a route change.
func TestCertificateReload(t *testing.T) {
	pki := tlstest.New(t)
	backend := echoBackend(t, "app")
	rt := l7Route(t, pki, "app.test", backend)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, rt)
	addr := env.addrs["https"]
	served := func() []byte {
		t.Helper()
		c, err := tlsDial(addr, &tls.Config{RootCAs: pki.Pool, ServerName: "app.test", MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	before := served()

	renewed := pki.Issue(t, "app-renewed", "app.test")
	for _, f := range []struct{ from, to string }{{renewed.CertFile, rt.TLSCert}, {renewed.KeyFile, rt.TLSKey}} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.to, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Make the change visible even on filesystems with coarse mtimes.
		future := time.Now().Add(2 * time.Second)
		if err := os.Chtimes(f.to, future, future); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for string(served()) == string(before) {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// slowBackend answers /slow only when released, and everything else at
// once, with its tag; it counts the requests it gets.
type slowBackend struct {
	addr    string
	started chan struct{}
	release chan struct{}
	hits    atomic.Int64
}

func newSlowBackend(t *testing.T, tag string) *slowBackend {
	t.Helper()
	b := &slowBackend{started: make(chan struct{}, 4), release: make(chan struct{})}
	b.addr = serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if r.URL.Path == "/slow" {
			b.started <- struct{}{}
			select {
			case <-b.release:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "%s %s\n", tag, r.URL.Path)
	}))
	return b
}

func (b *slowBackend) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-b.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the backend")
	}
}

// TestRouteChangeDrainsKeepAlive: after a route is replaced, the next
// request on a kept-alive client connection reaches the new backend, and
// a slow request in flight at the change completes from the old one;
// after a route is removed, no request reaches its backend. Before,
// kept-alive connections stayed with the old route until they closed.
func TestRouteChangeDrainsKeepAlive(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1.1", true: "http2"}[h2], func(t *testing.T) {
			pki := tlstest.New(t)
			a, b := newSlowBackend(t, "A"), newSlowBackend(t, "B")
			env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", a.addr))
			addr := env.addrs["https"]
			// One connection for HTTP/2; on HTTP/1.1 the slow request
			// needs a second one, so the client's first stays idle.
			client, slowClient := httpClient(pki, addr, nil, h2), httpClient(pki, addr, nil, h2)
			if h2 {
				slowClient = client
			}
			defer client.CloseIdleConnections()
			defer slowClient.CloseIdleConnections()
			fetchWith := func(client *http.Client, path string) (int, string, error) {
				resp, err := client.Get("https://app.test" + path)
				if err != nil {
					return 0, "", err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body), err
			}
			fetch := func(path string) (int, string, error) { return fetchWith(client, path) }
			if code, body, err := fetch("/first"); err != nil || code != 200 || body != "A /first\n" {
				t.Fatalf("before the change: %d %q %v", code, body, err)
			}
			type result struct {
				code int
				body string
				err  error
			}
			slow := make(chan result, 1)
			go func() {
				code, body, err := fetchWith(slowClient, "/slow")
				slow <- result{code, body, err}
			}()
			a.waitStarted(t)

			env.srv.SetRoutes(mustTable(t, l7Route(t, pki, "app.test", b.addr)))
			if code, body, err := fetch("/next"); err != nil || code != 200 || body != "B /next\n" {
				t.Fatalf("after the change: %d %q %v; want B", code, body, err)
			}
			close(a.release)
			if r := <-slow; r.err != nil || r.code != 200 || r.body != "A /slow\n" {
				t.Fatalf("request in flight at the change: %d %q %v; want it to complete from A", r.code, r.body, r.err)
			}

			env.srv.SetRoutes(mustTable(t))
			before := b.hits.Load()
			if code, body, err := fetch("/gone"); err == nil && code == 200 {
				t.Fatalf("after the removal: %d %q", code, body)
			}
			if n := b.hits.Load() - before; n != 0 {
				t.Fatalf("%d requests reached the removed route's backend", n)
			}
		})
	}
}

// TestRouteChangeCurlNext: curl with --next sends its second request on
// the connection of its first; a route change while the first is in
// flight lets it complete from the old backend and sends the second to
// the new one.
func TestRouteChangeCurlNext(t *testing.T) {
	bin := testtool.Require(t, "curl")
	for _, proto := range []string{"--http1.1", "--http2"} {
		t.Run(proto, func(t *testing.T) {
			pki := tlstest.New(t)
			a, b := newSlowBackend(t, "A"), newSlowBackend(t, "B")
			env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", a.addr))
			_, port, _ := net.SplitHostPort(env.addrs["https"])
			base := "https://app.test:" + port
			common := []string{"-sS", "--max-time", "20", "--resolve", "app.test:" + port + ":127.0.0.1", "--cacert", pki.CAFile, proto}
			args := append(append([]string{}, common...), base+"/slow", "--next")
			args = append(append(args, common...), base+"/after")
			cmd := exec.Command(bin, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			a.waitStarted(t)
			env.srv.SetRoutes(mustTable(t, l7Route(t, pki, "app.test", b.addr)))
			close(a.release)
			if err := cmd.Wait(); err != nil || out.String() != "A /slow\nB /after\n" {
				t.Fatalf("curl: %v: %q; want A /slow then B /after", err, out.String())
			}
		})
	}
}

// TestRouteRemovalClosesIdleConnection: an idle kept-alive connection of
// a removed route is closed at once, not left open until the idle
// timeout (a client cannot keep a removed route alive).
func TestRouteRemovalClosesIdleConnection(t *testing.T) {
	pki := tlstest.New(t)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}, IdleTimeout: time.Hour},
		l7Route(t, pki, "app.test", echoBackend(t, "app")))
	c := dialH1(t, pki, env.addrs["https"])
	defer c.Close()
	br := bufio.NewReader(c)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("first request: %+v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	env.srv.SetRoutes(mustTable(t))
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection of a removed route: read %d, %v; want EOF", n, err)
	}
	// The server closed it; its bookkeeping follows a moment later.
	deadline := time.Now().Add(5 * time.Second)
	for env.srv.Status().OpenConnections != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := env.srv.Status().OpenConnections; n != 0 {
		t.Fatalf("%d connections still open", n)
	}
}

func mustTable(t *testing.T, routes ...route.Route) *route.Table {
	t.Helper()
	table, err := route.NewTable(routes)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// TestRouteChangeRacingConnection: a connection whose TLS handshake
// finished before a route change and whose first request comes after it
// never reaches the old backend: net/http closes it unanswered (as any
// server closing a kept-alive connection may; clients retry), or, when
// the request was read just before the drain began, it is served by the
// route as it is now, or refused with 421 once the route is gone.
func TestRouteChangeRacingConnection(t *testing.T) {
	pki := tlstest.New(t)
	a, b := newSlowBackend(t, "A"), newSlowBackend(t, "B")
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", a.addr))
	late := func(change []route.Route, want string) {
		t.Helper()
		c := dialH1(t, pki, env.addrs["https"])
		defer c.Close()
		env.srv.SetRoutes(mustTable(t, change...))
		if _, err := c.Write([]byte("GET /late HTTP/1.1\r\nHost: app.test\r\n\r\n")); err != nil {
			return // closed already
		}
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("late request: %v; want an answer or the connection closed", err)
			}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		if got := fmt.Sprintf("%d %s", resp.StatusCode, body); got != want {
			t.Fatalf("late request: %q; want %q", got, want)
		}
	}
	for range 5 {
		late([]route.Route{l7Route(t, pki, "app.test", b.addr)}, "200 B /late\n")
		late([]route.Route{l7Route(t, pki, "app.test", a.addr)}, "200 A /late\n")
	}
	before := a.hits.Load()
	late(nil, "421 misdirected request\n")
	if a.hits.Load() != before {
		t.Fatal("a request reached the removed route's backend")
	}
}
