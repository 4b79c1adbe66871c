package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/peertest"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// recorder is a backend that records the requests it gets.
type recorder struct {
	addr string
	mu   sync.Mutex
	reqs []*http.Request
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.addr = serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r)
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprintf(w, "ok %s host=%s", r.URL.Path, r.Host)
	}))
	return rec
}

func (rec *recorder) requests() []*http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*http.Request(nil), rec.reqs...)
}

func (rec *recorder) paths() []string {
	var out []string
	for _, r := range rec.requests() {
		out = append(out, r.URL.Path)
	}
	return out
}

// rawExchange sends raw bytes over a new TLS connection (ALPN
// http/1.1) to addr and returns the first response and, when it says
// Connection: close, whether the server then closed the connection
// without answering anything else.
func rawExchange(t *testing.T, pki *tlstest.PKI, addr, raw string) (*http.Response, bool) {
	t.Helper()
	c := dialH1(t, pki, addr)
	defer c.Close()
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%q: no response: %v", raw, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if !resp.Close {
		return resp, false
	}
	// A second response would be an answer to bytes after the first
	// request; the connection must end instead.
	_, err = br.ReadByte()
	return resp, errors.Is(err, io.EOF)
}

// TestRequestFraming sends hand-made HTTP/1.1 requests with ambiguous or
// malformed framing to mc-proxy and to nginx (in front of the same
// backend, over TLS) and expects the same refusal from both, the
// connection closed, and nothing smuggled to the backend. Before,
// mc-proxy served Content-Length + Transfer-Encoding (dropping the
// Content-Length) and answered a malformed chunked body with 502, logged
// as a backend failure.
func TestRequestFraming(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "app.test", "app.test")
	rec := newRecorder(t, nil)
	nginx := peertest.Nginx(t, "ssl", fmt.Sprintf(`ssl_protocols TLSv1.3; ssl_certificate %s; ssl_certificate_key %s;
		lingering_timeout 100ms; # nginx lingers after a 400 with unread input
		location / { proxy_pass http://%s; proxy_http_version 1.1; }`, pair.CertFile, pair.KeyFile, rec.addr))
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", rec.addr))

	// smuggled follows each request: a proxy that framed the first one by
	// the wrong header would pass it on as a second request.
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"
	const post = "POST /a HTTP/1.1\r\nHost: app.test\r\n"
	for _, tc := range []struct {
		name, raw string
		want      int
	}{
		{"content-length and transfer-encoding", post + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"transfer-encoding and content-length, lower case", post + "transfer-encoding: chunked\r\ncontent-length: 48\r\n\r\n0\r\n\r\n", 400},
		{"transfer-encoding on http/1.0", "POST /a HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"chunk size not hex", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk without its CRLF", post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
		{"two content-lengths", post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"content-length with a sign", post + "Content-Length: +2\r\n\r\nab", 400},
		{"space before the colon", post + "Transfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\nab", 400},
		{"unknown transfer-encoding", post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501},
		{"chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501},
		{"gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"two hosts", "GET / HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n", 400},
		{"NUL in a header", "GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\x00b\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for peer, addr := range map[string]string{"mc-proxy": env.addrs["https"], "nginx": nginx} {
				resp, closed := rawExchange(t, pki, addr, tc.raw+smuggled)
				if resp.StatusCode != tc.want || !closed {
					t.Errorf("%s: %d, closed %v; want %d and the connection closed", peer, resp.StatusCode, closed, tc.want)
				}
			}
		})
	}
	for _, p := range rec.paths() {
		if p == "/smuggled" {
			t.Fatalf("a smuggled request reached the backend: %v", rec.paths())
		}
	}
	scrape := env.scrape(t)
	if strings.Contains(scrape, `outcome="502"`) {
		t.Fatalf("a client's framing error was counted as a backend failure:\n%s", scrape)
	}
	if !hasSample(scrape, `mcproxy_route_requests_total{listener="https",host="app.test",mode="l7",outcome="400"} 5`) {
		t.Errorf("the refusals mc-proxy answers itself are not counted as 400:\n%s", scrape)
	}
}

// TestRequestFramingCurl: curl sends both Content-Length and
// Transfer-Encoding when told to; mc-proxy answers 400 and the backend
// never sees the request.
func TestRequestFramingCurl(t *testing.T) {
	pki := tlstest.New(t)
	rec := newRecorder(t, nil)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", rec.addr))
	body, code := curlStatus(t, pki, "app.test", env.addrs["https"], "--http1.1",
		"-H", "Content-Length: 5", "-H", "Transfer-Encoding: chunked", "--data-binary", "hello")
	if code != "400" || !strings.Contains(body, "Content-Length and Transfer-Encoding") {
		t.Fatalf("curl with Content-Length and Transfer-Encoding: %s %q; want 400", code, body)
	}
	if body, code := curlStatus(t, pki, "app.test", env.addrs["https"], "--http1.1", "-H", "Transfer-Encoding: chunked", "--data-binary", "hello"); code != "200" {
		t.Fatalf("curl with a chunked body: %s %q", code, body)
	}
	if got := rec.paths(); len(got) != 1 {
		t.Fatalf("backend got %v; want only the chunked request", got)
	}
}

// TestHostTrailingDot: a fully qualified host name ("app.test.") in the
// Host header is the route's name, as nginx treats it; the backend sees
// it without the dot. Before, it was answered 421.
func TestHostTrailingDot(t *testing.T) {
	pki := tlstest.New(t)
	rec := newRecorder(t, nil)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", rec.addr))
	addr := env.addrs["https"]
	_, port, _ := net.SplitHostPort(addr)
	for _, proto := range []string{"--http1.1", "--http2"} {
		for _, tc := range []struct {
			host, header, want, code string
		}{
			{"app.test", "Host: app.test.", "ok /hello host=app.test", "200"},
			{"app.test", "Host: APP.Test.:" + port, "ok /hello host=APP.Test:" + port, "200"},
			// curl sends SNI without the dot, the Host header with it.
			{"app.test.", "", "ok /hello host=app.test:" + port, "200"},
			{"app.test", "Host: other.test.", "misdirected request\n", "421"},
			{"app.test", "Host: app.test..", "misdirected request\n", "421"},
		} {
			args := []string{proto}
			if tc.header != "" {
				args = append(args, "-H", tc.header)
			}
			if body, code := curlStatus(t, pki, tc.host, addr, args...); code != tc.code || body != tc.want {
				t.Errorf("curl %s %s %q: %s %q; want %s %q", proto, tc.host, tc.header, code, body, tc.code, tc.want)
			}
		}
	}
	// An absolute-form request target names the host it is for.
	if resp, _ := rawExchange(t, pki, addr, "GET https://other.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n"); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("absolute-form target for another host: %d; want 421", resp.StatusCode)
	}
}

// TestEncodingsPassThrough: mc-proxy neither asks the backend for gzip
// on the client's behalf nor decodes the answer; a gzip answer reaches
// the client as it was sent, with its Content-Encoding. Before, the
// backend transport added "Accept-Encoding: gzip" to requests without
// one and decompressed the answer in the proxy.
func TestEncodingsPassThrough(t *testing.T) {
	bin := testtool.Require(t, "curl")
	pki := tlstest.New(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("hello gzip"))
	_ = zw.Close()
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		// Always gzip, asked or not: what reaches the client is what the
		// backend sent.
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(gz.Bytes())
	})
	h2c := l7Route(t, pki, "h2c.test", rec.addr)
	h2c.BackendProtocol = route.H2C
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", rec.addr), h2c)
	_, port, _ := net.SplitHostPort(env.addrs["https"])
	dir := t.TempDir()
	for _, host := range []string{"app.test", "h2c.test"} {
		for _, proto := range []string{"--http1.1", "--http2"} {
			for _, compressed := range []bool{false, true} {
				name := fmt.Sprintf("%s %s compressed=%v", host, proto, compressed)
				headers, body := filepath.Join(dir, "headers"), filepath.Join(dir, "body")
				args := []string{"-sS", "--fail", "--max-time", "10", "--resolve", host + ":" + port + ":127.0.0.1", "--cacert", pki.CAFile,
					proto, "-D", headers, "-o", body}
				if compressed {
					args = append(args, "--compressed")
				}
				before := len(rec.requests())
				if out, err := exec.Command(bin, append(args, "https://"+host+":"+port+"/")...).CombinedOutput(); err != nil {
					t.Fatalf("%s: curl: %v: %s", name, err, out)
				}
				reqs := rec.requests()
				if len(reqs) != before+1 {
					t.Fatalf("%s: backend got %d requests", name, len(reqs)-before)
				}
				ae, sent := reqs[len(reqs)-1].Header["Accept-Encoding"]
				if compressed != sent || compressed && !strings.Contains(strings.Join(ae, ","), "gzip") {
					t.Errorf("%s: backend saw Accept-Encoding %q (present %v)", name, ae, sent)
				}
				h, _ := os.ReadFile(headers)
				if !strings.Contains(strings.ToLower(string(h)), "content-encoding: gzip") {
					t.Errorf("%s: the client got no Content-Encoding: gzip:\n%s", name, h)
				}
				b, _ := os.ReadFile(body)
				want := gz.Bytes()
				if compressed {
					want = []byte("hello gzip") // curl decoded it
				}
				if !bytes.Equal(b, want) {
					t.Errorf("%s: body %q, want %q", name, b, want)
				}
			}
		}
	}
}

// TestH2CUpgradeNotPassedOn: "Upgrade: h2c" over TLS is dropped, so a
// backend that honors h2c upgrades cannot hand the client a raw HTTP/2
// tunnel past the proxy (h2c smuggling); websocket upgrades still pass.
// Before, the backend answered 101 and the client had the tunnel.
func TestH2CUpgradeNotPassedOn(t *testing.T) {
	pki := tlstest.New(t)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			fmt.Fprint(w, "plain")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", r.Header.Get("Upgrade"))
		_ = brw.Flush()
	})
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", rec.addr))
	resp, _ := rawExchange(t, pki, env.addrs["https"], "GET / HTTP/1.1\r\nHost: app.test\r\n"+
		"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("h2c upgrade over TLS: %d; want 200 (served as a plain request)", resp.StatusCode)
	}
	if r := rec.requests()[0]; r.Header.Get("Upgrade") != "" || r.Header.Get("Http2-Settings") != "" {
		t.Fatalf("the backend saw Upgrade %q, HTTP2-Settings %q", r.Header.Get("Upgrade"), r.Header.Get("Http2-Settings"))
	}
	resp, _ = rawExchange(t, pki, env.addrs["https"], "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("websocket upgrade: %d; want 101", resp.StatusCode)
	}
}

// TestForwardingHeadersNotSpoofable: a client cannot set the forwarding
// headers the backend trusts, nor strip them by naming them in
// Connection.
func TestForwardingHeadersNotSpoofable(t *testing.T) {
	pki := tlstest.New(t)
	rec := newRecorder(t, nil)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", rec.addr))
	for _, proto := range []string{"--http1.1", "--http2"} {
		args := []string{proto, "-H", "X-Forwarded-For: 203.0.113.66", "-H", "X-Real-IP: 203.0.113.66",
			"-H", "Forwarded: for=203.0.113.66", "-H", "X-Forwarded-Proto: http", "-H", "X-Forwarded-Host: evil.test"}
		if proto == "--http1.1" {
			args = append(args, "-H", "Connection: keep-alive, X-Real-IP, X-Forwarded-For, X-Forwarded-Proto")
		}
		if _, code := curlStatus(t, pki, "app.test", env.addrs["https"], args...); code != "200" {
			t.Fatalf("%s: %s", proto, code)
		}
		reqs := rec.requests()
		h := reqs[len(reqs)-1].Header
		for k, want := range map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Forwarded-Proto": "https", "Forwarded": ""} {
			if got := strings.Join(h[k], ","); got != want {
				t.Errorf("%s: backend saw %s %q, want %q", proto, k, got, want)
			}
		}
		if got := h.Get("X-Forwarded-Host"); !strings.HasPrefix(got, "app.test:") {
			t.Errorf("%s: X-Forwarded-Host %q", proto, got)
		}
	}
}

// TestSlowAndIdleClientsClosed: a client that trickles its header
// (slowloris) is cut off after timeouts.hello however steadily it
// sends, and an idle kept-alive connection after timeouts.idle.
func TestSlowAndIdleClientsClosed(t *testing.T) {
	pki := tlstest.New(t)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}, HelloTimeout: 500 * time.Millisecond, IdleTimeout: 500 * time.Millisecond},
		l7Route(t, pki, "app.test", echoBackend(t, "app")))
	dial := func() *tls.Conn {
		c := dialH1(t, pki, env.addrs["https"])
		return c
	}
	// closedWithin reads c until it ends; false if it is still open
	// after limit (a generous bound: the timeouts are 0.5 s).
	closedWithin := func(c net.Conn, limit time.Duration) bool {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(io.Discard, c)
		}()
		select {
		case <-done:
			return true
		case <-time.After(limit):
			return false
		}
	}

	slow := dial()
	defer slow.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		_, _ = slow.Write([]byte("GET / HTTP/1.1\r\nHost: app.test\r\n"))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := fmt.Fprintf(slow, "X-%d: a\r\n", i); err != nil {
				return
			}
		}
	}()
	if !closedWithin(slow, 10*time.Second) {
		t.Fatal("a client trickling its header was never cut off")
	}

	idle := dial()
	defer idle.Close()
	if _, err := idle.Write([]byte("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if !closedWithin(idle, 10*time.Second) {
		t.Fatal("an idle kept-alive connection was never closed")
	}
}
