package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// scriptedBackend is an HTTP/1.1 backend written by hand: it records every
// request it reads (as net/http parses it) and answers with the raw bytes
// its path names, so answers net/http's server would never write (no
// Content-Type, close-delimited, 1xx, hop-by-hop fields, a lying length)
// can be relayed.
type scriptedBackend struct {
	addr string
	mu   sync.Mutex
	seen []string
	// closeAfterEach closes every connection after its first answer,
	// without saying so (an idle timeout racing the next request).
	closeAfterEach bool
}

func newScriptedBackend(t *testing.T) *scriptedBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &scriptedBackend{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

// startScripted starts a proxy with one "https" listener serving rt, its
// backend a new scriptedBackend, with the fast path off if noFast: one
// side of a comparison of the two paths.
func startScripted(t *testing.T, rt route.Route, noFast bool) (*proxyEnv, *scriptedBackend) {
	t.Helper()
	backend := newScriptedBackend(t)
	rt.Backend = backend.addr
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, rt)
	env.srv.noFast = noFast
	return env, backend
}

func (b *scriptedBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		b.mu.Lock()
		b.seen = append(b.seen, dumpRequest(r, body))
		closeAfter := b.closeAfterEach
		b.mu.Unlock()
		answer, last := scriptedAnswer(r, body)
		if _, err := io.WriteString(c, answer); err != nil || last || closeAfter {
			return
		}
	}
}

func (b *scriptedBackend) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen)
}

// dumpRequest is what the backend got: request line, Host, every field
// but Content-Length (sorted), the body's length and the body.
func dumpRequest(r *http.Request, body []byte) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s %s host=%q len=%d\n", r.Method, r.RequestURI, r.Proto, r.Host, r.ContentLength)
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		if k != "Content-Length" {
			fmt.Fprintf(&sb, "%s: %q\n", k, r.Header[k])
		}
	}
	fmt.Fprintf(&sb, "body %q", body)
	return sb.String()
}

// scriptedAnswer is the raw answer to r; last closes the connection after
// it.
func scriptedAnswer(r *http.Request, body []byte) (answer string, last bool) {
	const date = "Date: Mon, 30 Nov 2026 12:00:00 GMT\r\n"
	switch r.URL.Path {
	case "/notype":
		return "HTTP/1.1 200 OK\r\n" + date + "Content-Length: 15\r\n\r\n<html>hi</html>", false
	case "/nodate":
		return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", false
	case "/gzip":
		return "HTTP/1.1 200 OK\r\n" + date + "Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00", false
	case "/chunked":
		return "HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/plain\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n", false
	case "/close":
		return "HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/plain\r\nConnection: close\r\n\r\nuntil the end", true
	case "/hop":
		return "HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/plain\r\nConnection: X-Hop, keep-alive\r\nX-Hop: 1\r\n" +
			"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: foo\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\nok", false
	case "/hsts":
		return "HTTP/1.1 200 OK\r\n" + date + "Strict-Transport-Security: max-age=60; includeSubDomains\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", false
	case "/early":
		return "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", false
	case "/204":
		return "HTTP/1.1 204 No Content\r\n" + date + "Content-Length: 0\r\n\r\n", false
	case "/304":
		return "HTTP/1.1 304 Not Modified\r\n" + date + "Content-Type: text/plain\r\nContent-Length: 10\r\nEtag: \"x\"\r\n\r\n", false
	case "/599":
		return "HTTP/1.1 599 Odd\r\n" + date + "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", false
	case "/big":
		return "HTTP/1.1 200 OK\r\n" + date + "Content-Type: application/octet-stream\r\nContent-Length: 200000\r\n\r\n" + strings.Repeat("0123456789", 20000), false
	case "/sse":
		return "HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/event-stream\r\nContent-Length: 12\r\n\r\ndata: hi\r\n\r\n", false
	case "/truncated":
		return "HTTP/1.1 200 OK\r\n" + date + "Content-Type: text/plain\r\nContent-Length: 100\r\n\r\nshort", true
	case "/switch":
		return "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n", true
	case "/garbage":
		return "NOT HTTP\r\n\r\n", true
	}
	return fmt.Sprintf("HTTP/1.1 200 OK\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s %s", date, len(r.URL.Path)+1+len(body), r.URL.Path, body), false
}

// dumpResponses reads n answers from br and describes them: status, every
// field but Date (sorted; Date's presence is noted), body (or the error
// ending it), trailers; then whether the connection was closed after them.
func dumpResponses(br *bufio.Reader, c net.Conn, n int, method string, probe bool) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			fmt.Fprintf(&sb, "no answer: %v\n", errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))
			return sb.String()
		}
		if res.StatusCode < 200 {
			i-- // informational: the final answer follows
		}
		fmt.Fprintf(&sb, "%s %v ", res.Status, res.TransferEncoding)
		if err := dumpAnswer(&sb, res, ""); err != nil {
			return sb.String()
		}
	}
	if !probe {
		return sb.String()
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)) //nolint:errcheck // a failure shows below
	_, err := br.ReadByte()
	fmt.Fprintf(&sb, "closed=%v", err != nil && !errors.Is(err, errTimeoutProbe(err)))
	return sb.String()
}

// dumpAnswer describes an answer after its status: whether it has a Date,
// every other field (sorted), its body (or the error ending it) and
// trailers. It returns the body's error.
func dumpAnswer(sb *strings.Builder, res *http.Response, indent string) error {
	fmt.Fprintf(sb, "date=%v\n", res.Header.Get("Date") != "")
	res.Header.Del("Date")
	for _, k := range slices.Sorted(maps.Keys(res.Header)) {
		fmt.Fprintf(sb, "%s%s: %q\n", indent, k, res.Header[k])
	}
	body, err := io.ReadAll(res.Body)
	fmt.Fprintf(sb, "%sbody %d %q err=%v trailer=%v\n", indent, len(body), body[:min(len(body), 64)], err != nil, res.Trailer)
	return err
}

// errTimeoutProbe returns err when it is not a timeout, so closed= is true
// only for an ended connection.
func errTimeoutProbe(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errors.New("not a timeout")
}

type fastCase struct {
	name string
	// steps are written one after the other, each once the answers to the
	// previous one are read; a step may hold several pipelined requests.
	steps []fastStep
	// fast is how many of the case's requests the fast path must answer.
	fast int64
}

type fastStep struct {
	raw     string
	answers int
	method  string
}

func step(raw string) fastStep { return fastStep{raw: raw, answers: 1, method: "GET"} }

func get1(path string, extra ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: app.test\r\n" + strings.Join(extra, "") + "\r\n"
}

// TestFastPathMatchesNetHTTP sends the same requests through mc-proxy with
// and without the HTTP/1.1 fast path and requires the same: answers (bar
// Date's value), the same requests at the backend, the same connection
// ends. Requests the fast path does not take must be handed to net/http
// with nothing lost, also in the middle of a connection.
func TestFastPathMatchesNetHTTP(t *testing.T) {
	pki := tlstest.New(t)
	cases := []fastCase{
		{"get", []fastStep{step(get1("/a"))}, 1},
		{"answers", []fastStep{
			step(get1("/notype")), step(get1("/nodate")), step(get1("/gzip")), step(get1("/chunked")), step(get1("/hop")),
			step(get1("/hsts")), step(get1("/early")), step(get1("/204")), step(get1("/304")), step(get1("/599")),
			step(get1("/big")), step(get1("/sse")),
		}, 12},
		{"close-delimited answer", []fastStep{step(get1("/close")), step(get1("/after"))}, 2},
		{"head", []fastStep{{raw: "HEAD /big HTTP/1.1\r\nHost: app.test\r\n\r\n", answers: 1, method: "HEAD"}, step(get1("/next"))}, 2},
		{"post", []fastStep{step("POST /form?x=1&y=%2F HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2")}, 1},
		{"post in two writes", []fastStep{step("PUT /p HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\n\r\nhello world")}, 1},
		{"hop-by-hop and forwarding fields", []fastStep{step(get1("/h",
			"Connection: keep-alive\r\n", "Keep-Alive: 300\r\n", "Proxy-Authorization: Basic eA==\r\n", "Proxy-Connection: x\r\n",
			"X-Forwarded-For: 192.0.2.1\r\n", "x-forwarded-host: evil\r\n", "Forwarded: for=192.0.2.1\r\n", "X-Real-IP: 192.0.2.1\r\n",
			"X-Forwarded-Proto: http\r\n", "user-agent: curl\r\n", "Accept: */*\r\n", "Cookie: a=1\r\n", "Cookie: b=2\r\n", "X-Empty:\r\n", "X-Tab: \ta b \t\r\n"))}, 1},
		{"host forms", []fastStep{
			step("GET /h HTTP/1.1\r\nHost: APP.test:443\r\n\r\n"), step("GET /h HTTP/1.1\r\nHost: app.test.\r\n\r\n"),
			step("GET /h HTTP/1.1\r\nHost: app.test.:443\r\n\r\n"),
		}, 3},
		{"targets", []fastStep{
			step(get1("/a%2Fb/%41?q=%20&r=a+b")), step(get1("//double")), step(get1("/x?")), step(get1("/!$&'()*+,=:@~")),
		}, 4},
		{"connection close", []fastStep{step(get1("/c", "Connection: close\r\n"))}, 1},
		{"pipelined", []fastStep{{raw: get1("/one") + get1("/two") + get1("/three"), answers: 3, method: "GET"}}, 3},
		{"status code 1xx relayed in order", []fastStep{step(get1("/early")), step(get1("/early"))}, 2},
		// Backend failures.
		{"truncated answer", []fastStep{step(get1("/truncated"))}, 1},
		{"protocol switch nobody asked for", []fastStep{step(get1("/switch"))}, 1},
		{"garbage answer", []fastStep{step(get1("/garbage")), step(get1("/after"))}, 2},
		// Handed to net/http, first request or later.
		{"chunked body", []fastStep{step(get1("/a")), step("POST /c HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), step(get1("/b"))}, 1},
		{"expect", []fastStep{step("POST /e HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")}, 0},
		{"http/1.0", []fastStep{step(get1("/a")), step("GET /old HTTP/1.0\r\nHost: app.test\r\n\r\n")}, 1},
		{"lower-case method", []fastStep{step("get /m HTTP/1.1\r\nHost: app.test\r\n\r\n")}, 0},
		{"extension method", []fastStep{step("PROPFIND /m HTTP/1.1\r\nHost: app.test\r\n\r\n")}, 0},
		{"absolute form", []fastStep{step("GET https://app.test/abs HTTP/1.1\r\nHost: app.test\r\n\r\n")}, 0},
		{"absolute form for another host", []fastStep{step("GET https://other.test/abs HTTP/1.1\r\nHost: app.test\r\n\r\n")}, 0},
		{"options star", []fastStep{step("OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n")}, 0},
		{"semicolon query", []fastStep{step(get1("/q?a=1;b=2"))}, 0},
		{"bad escape", []fastStep{step(get1("/q?a=%zz"))}, 0},
		{"other host", []fastStep{step("GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")}, 0},
		{"two hosts", []fastStep{step("GET / HTTP/1.1\r\nHost: app.test\r\nHost: app.test\r\n\r\n")}, 0},
		{"no host", []fastStep{step("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")}, 0},
		{"two content-lengths", []fastStep{step("POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")}, 0},
		{"cl and te", []fastStep{step(get1("/a")), step("POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get1("/smuggled"))}, 1},
		{"connection names a field", []fastStep{step(get1("/a", "Connection: X-Secret\r\n", "X-Secret: 1\r\n"))}, 0},
		{"upgrade", []fastStep{step(get1("/ws", "Connection: Upgrade\r\n", "Upgrade: websocket\r\n"))}, 0},
		{"h2c upgrade", []fastStep{step(get1("/ws", "Connection: Upgrade, HTTP2-Settings\r\n", "Upgrade: h2c\r\n", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"))}, 0},
		{"te trailers", []fastStep{step(get1("/te", "TE: trailers\r\n"))}, 0},
		{"grpc", []fastStep{step("POST /pkg.S/M HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\n\r\n")}, 0},
		{"obs-fold", []fastStep{step(get1("/f", "X-A: 1\r\n", " folded\r\n"))}, 0},
		{"space before colon", []fastStep{step(get1("/s", "X-A : 1\r\n"))}, 0},
		{"bare LF", []fastStep{step("GET /lf HTTP/1.1\nHost: app.test\n\n")}, 0},
		{"leading blank line", []fastStep{step("\r\n" + get1("/blank"))}, 0},
		{"NUL in a field", []fastStep{step(get1("/n", "X-A: a\x00b\r\n"))}, 0},
		{"large head", []fastStep{step(get1("/l", "X-Big: "+strings.Repeat("b", 12000)+"\r\n")), step(get1("/after"))}, 0},
		{"large body", []fastStep{step("POST /lb HTTP/1.1\r\nHost: app.test\r\nContent-Length: 20000\r\n\r\n" + strings.Repeat("x", 20000)), step(get1("/after"))}, 0},
		{"h2 preface", []fastStep{step("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")}, 0},
		{"fast, handed over, then served by net/http", []fastStep{step(get1("/1")), step("GET /2 HTTP/1.1\r\nHost: app.test\r\nTE: trailers\r\n\r\n"), step(get1("/3")), step(get1("/4"))}, 1},
	}
	// One certificate for every case: the cases run in parallel.
	base := l7Route(t, pki, "app.test", "")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var answers, seen [2]string
			for i, noFast := range []bool{true, false} {
				env, backend := startScripted(t, base, noFast)
				answers[i] = fastExchange(t, pki, env.addrs["https"], tc.steps, tc.name == "post in two writes")
				seen[i] = strings.Join(backend.requests(), "\n---\n")
				if got := env.srv.fastRequests.Load(); noFast && got != 0 || !noFast && got != tc.fast {
					t.Errorf("noFast=%v: fast path answered %d requests, want %d", noFast, got, map[bool]int64{true: 0, false: tc.fast}[noFast])
				}
			}
			compareRuns(t, "net/http", "fast path", answers, seen)
		})
	}
}

// dialH1 opens a TLS connection to addr for app.test, ALPN http/1.1.
func dialH1(t *testing.T, pki *tlstest.PKI, addr string) *tls.Conn {
	t.Helper()
	cfg := pki.ClientConfig()
	cfg.ServerName, cfg.NextProtos = "app.test", []string{"http/1.1"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fastExchange runs steps over one TLS connection (ALPN http/1.1) and
// describes the answers. split sends each step in two writes, its last
// six bytes 50 ms after the rest.
func fastExchange(t *testing.T, pki *tlstest.PKI, addr string, steps []fastStep, split bool) string {
	t.Helper()
	c := dialH1(t, pki, addr)
	defer c.Close()
	br := bufio.NewReader(c)
	var out bytes.Buffer
	for i, s := range steps {
		raw := []byte(s.raw)
		if split {
			if _, err := c.Write(raw[:len(raw)-6]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			raw = raw[len(raw)-6:]
		}
		if _, err := c.Write(raw); err != nil {
			fmt.Fprintf(&out, "step %d: write failed\n", i)
			break
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a failure shows in the read
		fmt.Fprintf(&out, "step %d:\n", i)
		d := dumpResponses(br, c, s.answers, s.method, i == len(steps)-1)
		out.WriteString(d)
		if strings.Contains(d, "no answer") || strings.Contains(d, "err=true") {
			break
		}
	}
	return out.String()
}

// TestFastPathStaleBackendConnection: a backend closes each connection
// after its answer without saying so, and the proxy pools it. A GET sent
// on it fails before any answer byte and is sent again on a new
// connection; a POST, which must never be sent twice, finds the pooled
// connection closed before using it and takes a new one. The client sees
// neither.
func TestFastPathStaleBackendConnection(t *testing.T) {
	pki := tlstest.New(t)
	backend := newScriptedBackend(t)
	backend.closeAfterEach = true
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", backend.addr))
	const n = 6
	for i := range n {
		for _, raw := range []string{
			get1(fmt.Sprintf("/get%d", i)),
			fmt.Sprintf("POST /post%d HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\nbody", i),
		} {
			// The backend's close reaches the proxy before the next
			// request (a pooled connection closed while idle).
			time.Sleep(20 * time.Millisecond)
			if got := fastExchange(t, pki, env.addrs["https"], []fastStep{step(raw)}, false); !strings.Contains(got, "200 OK") {
				t.Fatalf("%q:\n%s", raw, got)
			}
		}
	}
	if seen := backend.requests(); len(seen) != 2*n {
		t.Fatalf("backend saw %d requests, want %d (each once)", len(seen), 2*n)
	}
	if got := env.srv.fastRequests.Load(); got != 2*n {
		t.Fatalf("fast path answered %d requests, want %d", got, 2*n)
	}
}

// TestFastPathBackendDown: an unreachable backend is a 502 with HSTS, as
// on the net/http path, and the client's connection stays usable.
func TestFastPathBackendDown(t *testing.T) {
	pki := tlstest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	base := l7Route(t, pki, "app.test", dead)
	var answers [2]string
	for i, noFast := range []bool{true, false} {
		env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, base)
		env.srv.noFast = noFast
		answers[i] = fastExchange(t, pki, env.addrs["https"], []fastStep{step(get1("/a")), step(get1("/b", "Connection: close\r\n"))}, false)
	}
	if answers[0] != answers[1] {
		t.Fatalf("answers differ\nnet/http:\n%s\nfast path:\n%s", answers[0], answers[1])
	}
	if strings.Count(answers[1], "502 Bad Gateway") != 2 || !strings.Contains(answers[1], "Strict-Transport-Security") || !strings.HasSuffix(answers[1], "closed=true") {
		t.Fatalf("want two 502s with HSTS, then the connection closed:\n%s", answers[1])
	}
}

// TestFastPathShutdownClosesIdle: stopping the proxy closes a kept-alive
// fast-path connection at once (not after the shutdown timeout), and the
// client sees the connection end.
func TestFastPathShutdownClosesIdle(t *testing.T) {
	pki := tlstest.New(t)
	backend := newScriptedBackend(t)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}, ShutdownTimeout: 30 * time.Second},
		l7Route(t, pki, "app.test", backend.addr))
	c := dialH1(t, pki, env.addrs["https"])
	defer c.Close()
	if _, err := io.WriteString(c, get1("/a")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if d := dumpResponses(br, c, 1, "GET", false); !strings.Contains(d, "200 OK") {
		t.Fatalf("first answer:\n%s", d)
	}
	if env.srv.fastRequests.Load() != 1 {
		t.Fatal("the request did not take the fast path")
	}
	start := time.Now()
	if err := env.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v with an idle fast-path connection", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // a failure shows in the read
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection after shutdown: %v, want EOF", err)
	}
}

// TestPooledMatchesTransport: HTTP/2 clients' requests without a body go
// to an HTTP/1.1 backend through the front's pool (h1client.go) instead of
// an http.Transport; the answers and what the backend sees must be the
// same either way.
func TestPooledMatchesTransport(t *testing.T) {
	pki := tlstest.New(t)
	base := l7Route(t, pki, "app.test", "")
	type req struct {
		method, path string
		header       http.Header
		body         string
	}
	reqs := []req{
		{"GET", "/a", nil, ""}, {"GET", "/notype", nil, ""}, {"GET", "/nodate", nil, ""}, {"GET", "/gzip", nil, ""},
		{"GET", "/chunked", http.Header{"Te": {"trailers"}}, ""}, {"GET", "/hop", nil, ""}, {"GET", "/hsts", nil, ""},
		{"GET", "/early", nil, ""}, {"GET", "/204", nil, ""}, {"GET", "/304", nil, ""}, {"GET", "/599", nil, ""},
		{"GET", "/big", nil, ""}, {"GET", "/sse", nil, ""}, {"HEAD", "/big", nil, ""}, {"GET", "/close", nil, ""},
		{"GET", "/q?a=1;b=2&c=%zz", nil, ""}, {"GET", "/a%2Fb?x=%20", nil, ""},
		{"GET", "/h", http.Header{"X-Forwarded-For": {"192.0.2.1"}, "Forwarded": {"for=x"}, "User-Agent": {"ua"}, "Cookie": {"a=1", "b=2"}}, ""},
		{"DELETE", "/d", nil, ""}, {"POST", "/empty", nil, ""}, {"POST", "/p", nil, "with a body"}, {"PROPFIND", "/x", nil, ""},
		{"GET", "/truncated", nil, ""}, {"GET", "/switch", nil, ""}, {"GET", "/garbage", nil, ""}, {"GET", "/after", nil, ""},
	}
	var answers, seen [2]string
	for i, noFast := range []bool{true, false} {
		env, backend := startScripted(t, base, noFast)
		c := httpClient(pki, env.addrs["https"], nil, true)
		var sb strings.Builder
		for _, r := range reqs {
			var body io.Reader
			if r.body != "" {
				body = strings.NewReader(r.body)
			}
			hr, err := http.NewRequest(r.method, "https://app.test"+r.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range r.header {
				hr.Header[k] = v
			}
			res, err := c.Do(hr)
			if err != nil {
				fmt.Fprintf(&sb, "%s %s: error\n", r.method, r.path)
				continue
			}
			fmt.Fprintf(&sb, "%s %s: %s %s ", r.method, r.path, res.Proto, res.Status)
			_ = dumpAnswer(&sb, res, "  ")
			res.Body.Close()
		}
		c.CloseIdleConnections()
		ls := env.srv.listeners["https"]
		ls.mu.Lock()
		pool := ls.fronts["app.test"].pool
		ls.mu.Unlock()
		pool.mu.Lock()
		idle := len(pool.idle)
		pool.mu.Unlock()
		if noFast && idle != 0 || !noFast && idle == 0 {
			t.Errorf("noFast=%v: %d idle pooled backend connections", noFast, idle)
		}
		answers[i] = sb.String()
		seen[i] = strings.Join(backend.requests(), "\n---\n")
		if got := env.srv.fastRequests.Load(); got != 0 {
			t.Errorf("fast path answered %d requests of HTTP/2 clients", got)
		}
	}
	compareRuns(t, "http.Transport", "pool", answers, seen)
}

// compareRuns requires two runs (named a and b) to have given the same
// answers and the same requests at the backend.
func compareRuns(t *testing.T, a, b string, answers, seen [2]string) {
	t.Helper()
	if answers[0] != answers[1] {
		t.Errorf("answers differ\n%s:\n%s\n%s:\n%s", a, answers[0], b, answers[1])
	}
	if seen[0] != seen[1] {
		t.Errorf("backend saw different requests\n%s:\n%s\n%s:\n%s", a, seen[0], b, seen[1])
	}
	if testing.Verbose() {
		t.Logf("answers:\n%s\nbackend:\n%s", answers[1], seen[1])
	}
}

// TestFastPathSilentClientClosed: a client that completes the TLS
// handshake and never sends a request is closed after the header
// timeout (timeouts.hello), as net/http does, not after the far longer
// idle timeout of kept-alive connections.
func TestFastPathSilentClientClosed(t *testing.T) {
	pki := tlstest.New(t)
	backend := newScriptedBackend(t)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}, HelloTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour},
		l7Route(t, pki, "app.test", backend.addr))
	c := dialH1(t, pki, env.addrs["https"])
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // a failure shows in the read
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("silent connection: %v, want it closed (EOF) by the proxy", err)
	}
}

// TestPooledClientGoneEndsBackendWait: an HTTP/2 client that gives up on
// a request (its stream reset) ends the proxy's wait on the pooled
// backend connection at once, as it cancels a transport's request: the
// backend sees that connection closed, not held until it answers.
func TestPooledClientGoneEndsBackendWait(t *testing.T) {
	pki := tlstest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{}, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		// Never answer; report when the proxy closes the connection.
		_, _ = io.Copy(io.Discard, c)
		closed <- struct{}{}
	}()
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", ln.Addr().String()))
	c := httpClient(pki, env.addrs["https"], nil, true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://app.test/poll", nil)
	if _, err := c.Do(req); err == nil {
		t.Fatal("the request got an answer")
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend connection was still open 5 s after the client gave up")
	}
}
