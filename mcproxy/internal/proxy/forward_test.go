package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// liveness bounds the waits of these tests for something that must
// happen (a chunk relayed, a request arriving); it is never what a test
// asserts on.
const liveness = 10 * time.Second

// forEachClient runs f with an HTTP/1.1 and an HTTP/2 client of the
// proxy at addr.
func forEachClient(t *testing.T, pki *tlstest.PKI, addr string, f func(t *testing.T, c *http.Client)) {
	t.Helper()
	for _, h2 := range []bool{false, true} {
		name := "client=h1"
		if h2 {
			name = "client=h2"
		}
		t.Run(name, func(t *testing.T) {
			c := httpClient(pki, addr, nil, h2)
			defer c.CloseIdleConnections()
			f(t, c)
		})
	}
}

// TestStreamingBothWays: the proxy relays what it has as it gets it, in
// both directions and in every backend protocol (h2 over TLS included,
// whose writes are coalesced): an answer's first chunk
// reaches the client while the backend still holds the rest (whether the
// answer's length is known or not), and a request body's first part
// reaches the backend while the client still holds the rest. A proxy that
// buffered either would leave the test waiting for bytes it never sends.
func TestStreamingBothWays(t *testing.T) {
	pki := tlstest.New(t)
	var mu sync.Mutex
	release := map[string]chan struct{}{}
	gate := func(id string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if release[id] == nil {
			release[id] = make(chan struct{})
		}
		return release[id]
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		switch r.URL.Path {
		case "/down", "/down-sized":
			if r.URL.Path == "/down-sized" {
				w.Header().Set("Content-Length", "13")
			}
			_, _ = io.WriteString(w, "first\n")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-gate(id):
			case <-time.After(liveness):
			}
			_, _ = io.WriteString(w, "second\n")
		case "/up":
			br := bufio.NewReader(r.Body)
			first, err := br.ReadString('\n')
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			close(gate(id))
			rest, _ := io.ReadAll(br)
			_, _ = io.WriteString(w, first+string(rest))
		}
	})
	plain := serveHTTP(t, handler)
	tlsServer := httptest.NewUnstartedServer(handler)
	tlsServer.TLS = &tls.Config{Certificates: []tls.Certificate{pki.Issue(t, "backend.internal", "backend.internal").TLS}}
	tlsServer.EnableHTTP2 = true
	tlsServer.StartTLS()
	t.Cleanup(tlsServer.Close)
	var n atomic.Int64
	for _, proto := range []string{route.HTTP1, route.H2C, "tls-" + route.Auto} {
		rt := l7Route(t, pki, "app.test", plain)
		rt.BackendProtocol = proto
		if proto == "tls-"+route.Auto {
			rt.Backend, rt.BackendProtocol = tlsServer.Listener.Addr().String(), route.Auto
			rt.BackendTLS, rt.BackendCA, rt.BackendServerName = true, pki.CAFile, "backend.internal"
		}
		env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, rt)
		t.Run("backend="+proto, func(t *testing.T) {
			forEachClient(t, pki, env.addrs["https"], func(t *testing.T, c *http.Client) {
				for _, path := range []string{"/down", "/down-sized"} {
					id := fmt.Sprint(n.Add(1))
					resp, err := c.Get("https://app.test" + path + "?id=" + id)
					if err != nil {
						t.Fatal(err)
					}
					br := bufio.NewReader(resp.Body)
					line, err := readLineWithin(br, liveness)
					if err != nil || line != "first\n" {
						close(gate(id))
						t.Fatalf("%s: the first chunk did not arrive while the backend held the rest: %q %v", path, line, err)
					}
					close(gate(id))
					rest, err := io.ReadAll(br)
					_ = resp.Body.Close()
					if err != nil || string(rest) != "second\n" {
						t.Fatalf("%s: rest %q %v", path, rest, err)
					}
				}

				id := fmt.Sprint(n.Add(1))
				pr, pw := io.Pipe()
				go func() {
					_, _ = io.WriteString(pw, "part one\n")
					select {
					case <-gate(id):
						_, _ = io.WriteString(pw, "part two\n")
						_ = pw.Close()
					case <-time.After(liveness):
						_ = pw.CloseWithError(fmt.Errorf("the backend never saw the first part of the body"))
					}
				}()
				req, _ := http.NewRequest(http.MethodPost, "https://app.test/up?id="+id, pr)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || string(body) != "part one\npart two\n" {
					t.Fatalf("upload: %d %q %v", resp.StatusCode, body, err)
				}
			})
		})
	}
}

// readLineWithin reads a line, giving up after limit.
func readLineWithin(br *bufio.Reader, limit time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := br.ReadString('\n')
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		return r.line, r.err
	case <-time.After(limit):
		return "", fmt.Errorf("nothing after %v", limit)
	}
}

// TestInformationalAndTrailers: 103 Early Hints from the backend reach
// the client before the answer, and trailers (declared, and announced
// only after the body) reach it after the body, over both client
// protocols.
func TestInformationalAndTrailers(t *testing.T) {
	pki := tlstest.New(t)
	backend := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Trailer", "X-Sum")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}))
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", backend))
	forEachClient(t, pki, env.addrs["https"], func(t *testing.T, c *http.Client) {
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, "https://app.test/", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "body" {
			t.Fatalf("answer %d %q", resp.StatusCode, body)
		}
		if len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload" {
			t.Errorf("informational answers %q, want the 103 with its Link", hints)
		}
		if resp.Header.Get("Link") != "" {
			t.Errorf("the 103's Link leaked into the final answer: %v", resp.Header)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "42" {
			t.Errorf("declared trailer X-Sum %q, trailers %v", got, resp.Trailer)
		}
		if got := resp.Trailer.Get("X-Late"); got != "yes" {
			t.Errorf("late trailer X-Late %q, trailers %v", got, resp.Trailer)
		}
	})
}

// TestHopByHopHeadersRemoved: hop-by-hop fields, fixed ones and those
// named in Connection, stop at the proxy in both directions; "TE:
// trailers" is the one TE passed on (gRPC needs it).
func TestHopByHopHeadersRemoved(t *testing.T) {
	pki := tlstest.New(t)
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Internal")
		h.Set("X-Internal", "secret")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("X-Public", "yes")
		_, _ = io.WriteString(w, "ok")
	})
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", rec.addr))
	for _, te := range []string{"trailers", "gzip"} {
		resp, _ := rawExchange(t, pki, env.addrs["https"], "GET /hop HTTP/1.1\r\nHost: app.test\r\n"+
			"Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\n"+
			"Proxy-Connection: keep-alive\r\nTE: "+te+"\r\nX-End: yes\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		for _, k := range []string{"X-Internal", "Keep-Alive", "Proxy-Authenticate"} {
			if v := resp.Header.Get(k); v != "" {
				t.Errorf("the client got the backend's hop-by-hop %s: %q", k, v)
			}
		}
		if resp.Header.Get("X-Public") != "yes" {
			t.Errorf("an end-to-end field was dropped: %v", resp.Header)
		}
		reqs := rec.requests()
		h := reqs[len(reqs)-1].Header
		for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection"} {
			if v := h.Get(k); v != "" {
				t.Errorf("the backend got the client's hop-by-hop %s: %q", k, v)
			}
		}
		if h.Get("X-End") != "yes" {
			t.Errorf("an end-to-end field was dropped: %v", h)
		}
		want := ""
		if te == "trailers" {
			want = "trailers"
		}
		if got := h.Get("Te"); got != want {
			t.Errorf("TE: %s reached the backend as %q, want %q", te, got, want)
		}
	}
}

// TestAbortedAnswerStaysIncomplete: when the backend fails in the middle
// of a streamed answer, the client sees a failed answer (connection
// closed, stream reset), never a complete-looking one: relayed as
// complete, a truncated chunked answer would look whole.
func TestAbortedAnswerStaysIncomplete(t *testing.T) {
	pki := tlstest.New(t)
	backend := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "partial")
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}))
	for _, proto := range []string{route.HTTP1, route.H2C} {
		rt := l7Route(t, pki, "app.test", backend)
		rt.BackendProtocol = proto
		env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, rt)
		t.Run("backend="+proto, func(t *testing.T) {
			forEachClient(t, pki, env.addrs["https"], func(t *testing.T, c *http.Client) {
				resp, err := c.Get("https://app.test/")
				if err != nil {
					return // failed before the header: also not complete
				}
				body, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err == nil {
					t.Fatalf("a truncated answer reached the client as complete: %d %q", resp.StatusCode, body)
				}
			})
		})
	}
}

// TestUpgradeCarriesEarlyBytes: bytes a client sends right behind its
// upgrade request (in the same write, before the 101) reach the backend.
// httputil.ReverseProxy, which mc-proxy used before, dropped them: they
// sit in net/http's read buffer, not in the hijacked connection.
func TestUpgradeCarriesEarlyBytes(t *testing.T) {
	pki := tlstest.New(t)
	ws := wsEchoBackend(t)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", ws))
	c := dialH1(t, pki, env.addrs["https"])
	defer c.Close()
	if _, err := c.Write([]byte("GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nearly\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(liveness))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "ws early\n" {
		t.Fatalf("the bytes sent with the upgrade request: %q %v", line, err)
	}
	if _, err := c.Write([]byte("later\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "ws later\n" {
		t.Fatalf("after the upgrade: %q %v", line, err)
	}
}

// TestHugeHeaderRefused: a request header block over the limit (64 KiB,
// where net/http would allow 1 MiB) is answered 431 and the connection
// closed; one under it is served.
func TestHugeHeaderRefused(t *testing.T) {
	pki := tlstest.New(t)
	rec := newRecorder(t, nil)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", rec.addr))
	resp, _ := rawExchange(t, pki, env.addrs["https"], "GET /small HTTP/1.1\r\nHost: app.test\r\nX-Big: "+
		strings.Repeat("a", 48<<10)+"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a 48 KiB header: %d", resp.StatusCode)
	}
	resp, closed := rawExchange(t, pki, env.addrs["https"], "GET /huge HTTP/1.1\r\nHost: app.test\r\nX-Big: "+
		strings.Repeat("a", 96<<10)+"\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !closed {
		t.Fatalf("a 96 KiB header: %d, closed %v; want 431 and the connection closed", resp.StatusCode, closed)
	}
	for _, p := range rec.paths() {
		if p == "/huge" {
			t.Fatal("the huge header reached the backend")
		}
	}
}

// countingBackend is a plain HTTP/1.1 backend that counts the
// connections opened to it and closed.
type countingBackend struct {
	addr           string
	opened, closed atomic.Int64
}

func newCountingBackend(t *testing.T, h http.Handler) *countingBackend {
	t.Helper()
	b := &countingBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: liveness, ConnState: func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			b.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.closed.Add(1)
		}
	}}
	go srv.Serve(ln) //nolint:errcheck // closed by cleanup
	t.Cleanup(func() { srv.Close() })
	b.addr = ln.Addr().String()
	return b
}

// TestBackendConnectionsPooled: backend connections are pooled for the
// client concurrency. Many kept-alive clients that each sent one request
// (in turn) hold no backend connection of their own; and rounds of 100
// requests in flight at once (more than the 64 idle connections per
// backend mc-proxy kept before) reuse the backend connections of the
// previous round instead of closing the surplus and dialling it again.
func TestBackendConnectionsPooled(t *testing.T) {
	pki := tlstest.New(t)
	const inFlight, rounds = 100, 3
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*liveness)
	defer cancel()
	b := newCountingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/barrier" {
			// Every request of a round waits for the round's last.
			mu.Lock()
			arrived++
			round := all
			if arrived == inFlight {
				arrived = 0
				all = make(chan struct{})
				close(round)
			}
			mu.Unlock()
			select {
			case <-round:
			case <-ctx.Done():
				http.Error(w, "round never filled", http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", b.addr))
	addr := env.addrs["https"]

	const idleClients = 40
	for i := range idleClients {
		c := httpClient(pki, addr, nil, false)
		defer c.CloseIdleConnections()
		if code, body := getKeepAlive(t, c, "https://app.test/"); code != http.StatusOK {
			t.Fatalf("client %d: %d %q", i, code, body)
		}
	}
	if n := b.opened.Load(); n >= idleClients/2 {
		t.Errorf("%d kept-alive clients that sent a request each made %d backend connections", idleClients, n)
	}

	c := httpClient(pki, addr, nil, false)
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("httpClient's transport is a %T", c.Transport)
	}
	tr.MaxIdleConnsPerHost = inFlight
	defer c.CloseIdleConnections()
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, inFlight)
		for range inFlight {
			wg.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://app.test/barrier", nil)
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if n := b.opened.Load(); n < inFlight {
		t.Fatalf("%d requests in flight at once over %d backend connections", inFlight, n)
	}
	if n := b.closed.Load(); n != 0 {
		t.Errorf("the proxy closed %d backend connections between rounds of %d requests in flight (pool too small: dial churn)", n, inFlight)
	}
}

// getKeepAlive sends one GET and reads the answer, leaving the
// connection open.
func getKeepAlive(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
