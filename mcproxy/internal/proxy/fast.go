package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// The HTTP/1.1 fast path. An HTTP/1.1 client of a route whose backend
// speaks HTTP/1.1 (backend_protocol http1, plain or TLS) is served by one
// goroutine that reads the client's request, writes it to a pooled backend
// connection, reads the answer and writes it back: no net/http server
// connection machinery (a background read goroutine, deadlines and a
// context per request) and no http.Transport (two goroutines per backend
// connection and the channel handoffs between them). A profile of mc-proxy
// under load had those at roughly a third of its CPU time.
//
// It serves only requests whose framing has a single reading: HTTP/1.1, a
// method from a fixed list, an origin-form target made of characters that
// every parser reads alike, CRLF line ends, no obs-fold, at most one
// Content-Length and no Transfer-Encoding, no Expect, Upgrade, TE, Trailer
// or HTTP2-Settings, Connection only "keep-alive" or "close", exactly one
// Host naming the route, not gRPC, and a body (if any) that has arrived
// whole with its head. At the first request that is anything else, the
// connection is handed, with every unread byte, to the route's net/http
// server (the front's http.Server, with h1scan), which serves it and the
// rest of the connection: every rule of the hardened path (request
// smuggling refusals, 421, 505, upgrades, 100-continue, streamed and
// chunked bodies) applies to those requests unchanged, and the fast path
// never has to answer an odd request itself.
//
// What the backend receives is what the net/http path sends for the same
// request: the client's header lines (byte for byte, so in the client's
// case and order) without hop-by-hop and forwarding fields, Host as the
// route names it, X-Forwarded-For / X-Real-IP / X-Forwarded-Proto /
// X-Forwarded-Host. The answer is read with net/http's own parser
// (http.ReadResponse) and written as net/http's server would write it
// (status text, Date, a sniffed Content-Type when the backend sent none,
// chunked when its length is unknown, trailers), with the hop-by-hop
// fields removed and HSTS added.

// Writes to a client or backend go through a bufio.Writer, whose first
// error sticks and shows at its Flush: the writes before a Flush do not
// check theirs.

// fastReadBuf is the fast path's read buffer per client connection: a
// request head and body that do not fit go to the net/http path.
const fastReadBuf = 8 << 10

// maxInformational bounds the 1xx answers relayed before the final one
// (http.Transport's limit).
const maxInformational = 5

// fastEligible reports whether a route's HTTP/1.1 clients start on the
// fast path.
func fastEligible(rt route.Route) bool {
	return rt.Mode == route.L7 && rt.BackendProtocol == route.HTTP1
}

// serveH1 serves a TLS connection that did not negotiate h2: on the fast
// path when the route allows it, else by the route's net/http server.
func (s *Server) serveH1(ls *listenerState, c *trackedConn, tc *tls.Conn, rt route.Route) {
	f := s.frontFor(ls, rt.Hostname, c)
	if f == nil {
		c.Close() //nolint:errcheck,gosec // nothing serves this name any more
		return
	}
	if f.pool == nil || s.noFast {
		s.push(ls, c, &h1Conn{Conn: tc, scan: newScanner()}, rt.Hostname, f)
		return
	}
	fc := &fastConn{f: f, ls: ls, c: c, tc: tc, clientIP: c.client.Addr().String()}
	fc.serve()
}

// push hands an HTTP/1 or h2 connection to the net/http server of the
// current front of host (f, when it is still current). A front being
// retired refuses connections; the next lookup finds the route's current
// front.
func (s *Server) push(ls *listenerState, c *trackedConn, conn net.Conn, host string, f *l7Front) {
	for range 3 {
		if f == nil {
			f = s.frontFor(ls, host, c)
		}
		if f == nil {
			break // the route is gone, or the listener is draining
		}
		if f.ln.push(conn) == nil {
			return
		}
		f = nil
	}
	c.Close() //nolint:errcheck,gosec // nothing serves this name any more
}

// fastConn is one client connection on the fast path.
type fastConn struct {
	f        *l7Front
	ls       *listenerState
	c        *trackedConn
	tc       *tls.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	clientIP string
	// idle is set while the connection waits for a request (shutdown
	// wakes those).
	idle atomic.Bool
	// own is the connection's private backend connection on a route that
	// sends PROXY headers (never pooled: the header names this client).
	own *backendConn
	// deadline is the read deadline last set and when.
	deadline    deadlineKind
	deadlineSet time.Time
	// req is the request being served; served counts those answered.
	req    fastRequest
	served int
}

type deadlineKind uint8

const (
	deadlineNone deadlineKind = iota
	deadlineIdle
	deadlineHeader
)

// fastRequest is a parsed request on the fast path: slices of the read
// buffer, valid until it is discarded.
type fastRequest struct {
	head   []byte // request line to the blank line
	method string
	target []byte
	lines  [][]byte // header lines passed on (CRLF included)
	host   string   // Host as sent to the backend
	body   int      // Content-Length (0 when absent)
	hasCL  bool
	close  bool // Connection: close
	start  time.Time
}

var (
	fastReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastReadBuf) }}
	fastWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// serve runs the connection until it ends or is handed to net/http.
func (fc *fastConn) serve() {
	f := fc.f
	fc.br, _ = fastReaders.Get().(*bufio.Reader) // the pool holds *bufio.Reader
	fc.br.Reset(fc.tc)
	fc.bw, _ = fastWriters.Get().(*bufio.Writer) // the pool holds *bufio.Writer
	fc.bw.Reset(fc.tc)
	f.addFast(fc)
	handed := false
	defer func() {
		f.removeFast(fc)
		if fc.own != nil {
			fc.own.close()
		}
		if !handed {
			fc.tc.Close() //nolint:errcheck,gosec // the connection ends
		}
		fc.br.Reset(nil)
		fastReaders.Put(fc.br)
		fc.bw.Reset(nil)
		fastWriters.Put(fc.bw)
	}()
	for {
		if fc.br.Buffered() == 0 {
			if !fc.waitRequest() {
				return
			}
		}
		if f.stopping.Load() || f.retired.Load() {
			// A request reached a front that is going away: the route's
			// current front serves it (or closes the connection).
			handed = fc.handOver(nil)
			return
		}
		ok, err := fc.readRequest()
		if err != nil {
			f.s.log.Debug("l7: reading a request", "listener", fc.ls.Name, "host", f.route.Hostname, "client", fc.clientIP, "err", err)
			return
		}
		if !ok {
			handed = fc.handOver(f)
			return
		}
		keep := fc.exchange()
		fc.served++
		fc.br.Discard(len(fc.req.head) + fc.req.body) //nolint:errcheck,gosec // buffered
		if !keep {
			return
		}
	}
}

// waitRequest waits for the first byte of the next request, under the
// idle timeout; false when the connection is to end.
func (fc *fastConn) waitRequest() bool {
	f := fc.f
	if fc.served == 0 {
		// The first request is due within the header timeout, as on
		// net/http: a connection that says nothing ends then.
		fc.setDeadline(deadlineHeader, f.s.opts.HelloTimeout)
	} else {
		fc.setDeadline(deadlineIdle, f.s.opts.IdleTimeout)
	}
	// Ordered against shutdown: it sets stopping, then sets a past
	// deadline on every idle connection.
	fc.idle.Store(true)
	if f.stopping.Load() || f.retired.Load() {
		fc.idle.Store(false)
		return false
	}
	_, err := fc.br.Peek(1)
	fc.idle.Store(false)
	return err == nil
}

// setDeadline sets the read deadline of kind to now+d. An idle deadline
// is only moved when the one set is more than an eighth of d (at most a
// second) old: a busy connection does not reprogram its timer per
// request, and an idle one ends after d less at most that slack.
func (fc *fastConn) setDeadline(kind deadlineKind, d time.Duration) {
	now := time.Now()
	if kind == deadlineIdle && fc.deadline == deadlineIdle && now.Sub(fc.deadlineSet) < min(d/8, time.Second) {
		return
	}
	fc.deadline, fc.deadlineSet = kind, now
	fc.tc.SetReadDeadline(now.Add(d)) //nolint:errcheck,gosec // a failure shows on the next read
}

// handOver gives the connection, with its unread bytes, to the net/http
// server of the route's current front (f, or the one current now when f
// is nil). It reports whether it did.
func (fc *fastConn) handOver(f *l7Front) bool {
	if err := fc.tc.SetReadDeadline(time.Time{}); err != nil {
		return false
	}
	var prefix []byte
	if n := fc.br.Buffered(); n > 0 {
		b, _ := fc.br.Peek(n)
		prefix = bytes.Clone(b)
	}
	if f != nil && (f.stopping.Load() || f.retired.Load()) {
		f = nil
	}
	fc.f.s.push(fc.ls, fc.c, &h1Conn{Conn: fc.tc, scan: newScanner(), prefix: prefix}, fc.f.route.Hostname, f)
	return true
}

// readRequest reads the next request head (and its body) into fc.req. It
// reports false, with no error, when the request is not one the fast path
// serves; an error (the client went away or too slow) ends the
// connection, as it does on the net/http path.
func (fc *fastConn) readRequest() (bool, error) {
	fc.req = fastRequest{lines: fc.req.lines[:0], start: time.Now()}
	for {
		buf, _ := fc.br.Peek(fc.br.Buffered())
		end, bad := headEnd(buf)
		switch {
		case bad:
			return false, nil
		case end >= 0:
			return fc.parseRequest(end)
		case len(buf) >= fc.br.Size():
			return false, nil // a large head: net/http's limits apply
		}
		if fc.deadline != deadlineHeader {
			fc.setDeadline(deadlineHeader, fc.f.s.opts.HelloTimeout)
		}
		if _, err := fc.br.Peek(len(buf) + 1); err != nil {
			return false, err
		}
	}
}

// parseRequest parses the head that ends at end and waits for the body.
// Reading more can move the buffered bytes, so the head is parsed again
// from where they are once the body is in.
func (fc *fastConn) parseRequest(end int) (bool, error) {
	r := &fc.req
	buf, _ := fc.br.Peek(end)
	r.head = buf
	if !r.parse(fc.f.route.Hostname) {
		return false, nil
	}
	if r.body == 0 || fc.br.Buffered() >= end+r.body {
		return true, nil
	}
	if end+r.body > fc.br.Size() {
		return false, nil // a body that does not fit is streamed by net/http
	}
	if fc.deadline != deadlineHeader {
		fc.setDeadline(deadlineHeader, fc.f.s.opts.HelloTimeout)
	}
	if _, err := fc.br.Peek(end + r.body); err != nil {
		return false, err
	}
	buf, _ = fc.br.Peek(end)
	r.head = buf
	return r.parse(fc.f.route.Hostname), nil
}

// headEnd finds the end of the request head in buf (the index after its
// blank line), -1 when it is not all there yet; bad is set for a head the
// fast path does not read (a bare LF, a leading blank line).
func headEnd(buf []byte) (end int, bad bool) {
	start := 0
	for {
		i := bytes.IndexByte(buf[start:], '\n')
		if i < 0 {
			return -1, false
		}
		i += start
		if i == 0 || buf[i-1] != '\r' {
			return -1, true
		}
		if i-start == 1 { // "\r\n": the blank line
			if start == 0 {
				return -1, true
			}
			return i + 1, false
		}
		start = i + 1
	}
}

// Methods the fast path serves (anything else, e.g. CONNECT, TRACE, PRI,
// an extension method, goes to net/http).
var fastMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}

// parse reads r.head. It reports false for a request the fast path does
// not serve.
func (r *fastRequest) parse(routeHost string) bool {
	h := r.head
	nl := bytes.IndexByte(h, '\n')
	line := h[:nl-1]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return false
	}
	r.method = ""
	for _, m := range fastMethods {
		if string(line[:sp]) == m {
			r.method = m
			break
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if r.method == "" || sp < 0 || string(rest[sp+1:]) != "HTTP/1.1" {
		return false
	}
	r.target = rest[:sp]
	if !safeTarget(r.target) {
		return false
	}
	r.lines = r.lines[:0]
	r.host, r.body, r.hasCL, r.close = "", 0, false, false
	hosts := 0
	for h = h[nl+1:]; len(h) > 2; {
		nl = bytes.IndexByte(h, '\n')
		full := h[:nl+1]
		line = h[:nl-1]
		h = h[nl+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return false // includes obs-fold and a space before the colon
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validValue(value) {
			return false
		}
		switch {
		case equalFold(name, "host"):
			hosts++
			host := string(value)
			if hosts > 1 || !safeHost(host) || route.NormalizeHost(hostOnly(host)) != routeHost {
				return false
			}
			r.host = normalizeHostHeader(host)
			continue
		case equalFold(name, "content-length"):
			if r.hasCL || len(value) == 0 || len(value) > 9 {
				return false
			}
			n := 0
			for _, c := range value {
				if c < '0' || c > '9' {
					return false
				}
				n = n*10 + int(c-'0')
			}
			r.hasCL, r.body = true, n
		case equalFold(name, "connection"):
			switch {
			case equalFold(value, "close"):
				r.close = true
			case equalFold(value, "keep-alive"):
			default:
				return false // names fields to drop, or upgrade
			}
			continue
		case equalFold(name, "transfer-encoding"), equalFold(name, "expect"), equalFold(name, "upgrade"),
			equalFold(name, "te"), equalFold(name, "trailer"), equalFold(name, "http2-settings"):
			return false
		case equalFold(name, "content-type"):
			if len(value) >= len("application/grpc") && equalFold(value[:len("application/grpc")], "application/grpc") {
				return false // refused on an HTTP/1.1 route by the net/http path
			}
		case equalFold(name, "keep-alive"), equalFold(name, "proxy-connection"), equalFold(name, "close"),
			equalFold(name, "proxy-authenticate"), equalFold(name, "proxy-authorization"):
			continue // hop-by-hop
		case equalFold(name, "forwarded"), equalFold(name, "x-forwarded-for"), equalFold(name, "x-forwarded-host"),
			equalFold(name, "x-forwarded-proto"), equalFold(name, "x-real-ip"):
			continue // the proxy sets its own
		}
		r.lines = append(r.lines, full)
	}
	return hosts == 1
}

// safeTarget reports whether an origin-form target is made only of
// characters every parser reads alike, with valid percent escapes and no
// ';' (net/url's query parser refuses it, and the net/http path re-encodes
// such a query): the net/http path would send the very same bytes.
func safeTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,=:@/?", c) >= 0:
		case c == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

// safeHost reports whether a Host value is a plain name or address with
// an optional port.
func safeHost(h string) bool {
	if h == "" {
		return false
	}
	for i := range len(h) {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == ':':
		default:
			return false
		}
	}
	return true
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validValue reports whether a field value has no control characters
// other than HTAB (obs-text is allowed, as net/http allows it).
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares an ASCII field name or value with a lower-case
// string.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// exchange forwards fc.req and relays the answer. It reports whether the
// connection stays open for another request.
func (fc *fastConn) exchange() (keep bool) {
	f, r := fc.f, &fc.req
	code := http.StatusBadGateway
	f.s.fastRequests.Add(1)
	defer func() {
		f.metrics.done(f.metrics.status(code), r.start)
		if f.s.log.Enabled(context.Background(), slog.LevelDebug) {
			path, _, _ := strings.Cut(string(r.target), "?")
			f.s.log.Debug("l7 request", "listener", fc.ls.Name, "host", f.route.Hostname, "method", r.method, "path", path,
				"proto", "HTTP/1.1", "status", code, "client", fc.clientIP, "duration", time.Since(r.start), "fast", true)
		}
	}()
	res, b, err := fc.roundTrip()
	if err != nil {
		f.s.log.Warn("l7: backend error", "listener", fc.ls.Name, "host", f.route.Hostname,
			"backend", f.route.Backend, "backend_protocol", f.route.BackendProtocol, "client", fc.clientIP, "err", err)
		return fc.writeBadGateway(r.close) && !r.close
	}
	code = res.StatusCode
	keep, reuse := fc.relay(res)
	// Bytes after the answer (a body sent to a HEAD request, an answer to
	// nothing) make the connection unusable, as http.Transport finds.
	if reuse && !res.Close && b.br.Buffered() == 0 {
		fc.release(b)
	} else {
		b.close()
	}
	return keep && !r.close
}

// roundTrip sends fc.req to the backend (see backendRoundTrip).
func (fc *fastConn) roundTrip() (*http.Response, *backendConn, error) {
	res, b, _, err := backendRoundTrip(context.Background(), fc.acquire, backendRequest{
		write:      fc.writeRequest,
		head:       fc.req.method == http.MethodHead,
		on1xx:      fc.writeInformational,
		replayable: replayable(fc.req.method),
	})
	return res, b, err
}

// writeRequest writes fc.req as the backend gets it.
func (fc *fastConn) writeRequest(w *bufio.Writer) {
	r := &fc.req
	_, _ = w.WriteString(r.method)
	_ = w.WriteByte(' ')
	_, _ = w.Write(r.target)
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.WriteString(r.host)
	_, _ = w.WriteString("\r\n")
	for _, l := range r.lines {
		_, _ = w.Write(l)
	}
	_, _ = w.WriteString("X-Forwarded-For: ")
	_, _ = w.WriteString(fc.clientIP)
	_, _ = w.WriteString("\r\nX-Forwarded-Host: ")
	_, _ = w.WriteString(r.host)
	_, _ = w.WriteString("\r\nX-Forwarded-Proto: https\r\nX-Real-Ip: ")
	_, _ = w.WriteString(fc.clientIP)
	_, _ = w.WriteString("\r\n\r\n")
	if r.body > 0 {
		body, _ := fc.br.Peek(len(r.head) + r.body)
		_, _ = w.Write(body[len(r.head):])
	}
}

// writeInformational relays a 1xx answer (100 Continue, 103 Early Hints)
// as it came, like the net/http path.
func (fc *fastConn) writeInformational(res *http.Response) error {
	writeStatusLine(fc.bw, res.StatusCode)
	_ = res.Header.WriteSubset(fc.bw, noBodyFields)
	_, _ = fc.bw.WriteString("\r\n")
	if err := fc.bw.Flush(); err != nil {
		return fmt.Errorf("write to client: %w", err)
	}
	return nil
}

// noBodyFields are left out of a 1xx answer, as net/http leaves them out.
var noBodyFields = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

func writeStatusLine(w *bufio.Writer, code int) {
	var num [3]byte
	_, _ = w.WriteString("HTTP/1.1 ")
	_, _ = w.Write(strconv.AppendInt(num[:0], int64(code), 10))
	_ = w.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		_, _ = w.WriteString(text)
	} else {
		_, _ = w.WriteString("status code ")
		_, _ = w.Write(strconv.AppendInt(num[:0], int64(code), 10))
	}
	_, _ = w.WriteString("\r\n")
}

// writeBadGateway answers 502 as the net/http path does; it reports
// whether the connection is still usable.
func (fc *fastConn) writeBadGateway(closing bool) bool {
	w := fc.bw
	writeStatusLine(w, http.StatusBadGateway)
	if closing {
		_, _ = w.WriteString("Connection: close\r\n")
	}
	_, _ = w.WriteString("Content-Length: 0\r\nDate: ")
	writeDate(w)
	_, _ = w.WriteString("\r\nStrict-Transport-Security: ")
	_, _ = w.WriteString(valueHSTS[0])
	_, _ = w.WriteString("\r\n\r\n")
	return w.Flush() == nil
}

// relay writes the answer to the client as net/http's server writes what
// the net/http path's handler gives it. keep reports whether the client
// connection can serve another request, reuse whether the backend
// connection can (its answer was read to the end).
func (fc *fastConn) relay(res *http.Response) (keep, reuse bool) {
	defer res.Body.Close() //nolint:errcheck // a read-only body
	r, h := &fc.req, res.Header
	removeHopHeaders(h)
	edgeHeaders(res)
	bodyAllowed := r.method != http.MethodHead && res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusNotModified
	switch res.StatusCode {
	case http.StatusNotModified:
		delete(h, "Content-Type")
		delete(h, "Content-Length")
	case http.StatusNoContent:
		delete(h, "Content-Length")
	}
	chunked := bodyAllowed && res.ContentLength < 0
	// An answer of unknown length or an event stream has its header sent
	// at once (it may wait long for its first event); any other has its
	// first body bytes sent with the header, and a missing Content-Type
	// sniffed from them.
	streaming := chunked || isEventStream(h)
	bp, _ := bufPool.Get().(*[]byte) // the pool only holds *[]byte
	defer bufPool.Put(bp)
	buf := *bp
	var n int
	var rerr error
	if bodyAllowed && !streaming {
		for n == 0 && rerr == nil {
			n, rerr = res.Body.Read(buf)
		}
		_, haveType := h["Content-Type"]
		if n > 0 && !haveType && h.Get("Content-Encoding") == "" {
			h["Content-Type"] = []string{http.DetectContentType(buf[:n])}
		}
	}
	w := fc.bw
	writeStatusLine(w, res.StatusCode)
	_ = h.Write(w)
	if _, ok := h["Date"]; !ok {
		_, _ = w.WriteString("Date: ")
		writeDate(w)
		_, _ = w.WriteString("\r\n")
	}
	if chunked {
		if len(res.Trailer) > 0 {
			keys := make([]string, 0, len(res.Trailer))
			for k := range res.Trailer {
				keys = append(keys, k)
			}
			_, _ = w.WriteString("Trailer: ")
			_, _ = w.WriteString(strings.Join(keys, ", "))
			_, _ = w.WriteString("\r\n")
		}
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if r.close {
		_, _ = w.WriteString("Connection: close\r\n")
	}
	_, _ = w.WriteString("\r\n")
	if !bodyAllowed {
		return w.Flush() == nil, true
	}
	if streaming {
		if err := w.Flush(); err != nil {
			fc.abort(res, fmt.Errorf("write to client: %w", err), true)
			return false, false
		}
		n, rerr = res.Body.Read(buf)
	}
	var written int64
	var size [16]byte
	for {
		if n > 0 {
			if chunked {
				_, _ = w.Write(strconv.AppendInt(size[:0], int64(n), 16))
				_, _ = w.WriteString("\r\n")
			}
			_, _ = w.Write(buf[:n])
			if chunked {
				_, _ = w.WriteString("\r\n")
			}
			written += int64(n)
		}
		if rerr != nil {
			break
		}
		// Bytes received go out at once; the last ones of an answer of
		// known length go with its end.
		if n > 0 && (streaming || written < res.ContentLength) {
			if err := w.Flush(); err != nil {
				fc.abort(res, fmt.Errorf("write to client: %w", err), true)
				return false, false
			}
		}
		n, rerr = res.Body.Read(buf)
	}
	if !errors.Is(rerr, io.EOF) {
		fc.abort(res, fmt.Errorf("read from backend: %w", rerr), false)
		return false, false
	}
	if chunked {
		_, _ = w.WriteString("0\r\n")
		_ = res.Trailer.Write(w)
		_, _ = w.WriteString("\r\n")
	}
	return w.Flush() == nil, true
}

// abort ends an answer that cannot be completed: the client sees a closed
// connection, never a complete-looking answer.
func (fc *fastConn) abort(res *http.Response, err error, clientGone bool) {
	level := slog.LevelWarn
	if clientGone {
		level = slog.LevelDebug
	}
	fc.f.s.log.Log(context.Background(), level, "l7: answer aborted", "listener", fc.ls.Name, "host", fc.f.route.Hostname,
		"backend", fc.f.route.Backend, "client", fc.clientIP, "status", res.StatusCode, "err", err)
}

// dateField is the Date field's value, formatted at most once a second.
type dateField struct {
	sec  int64
	text []byte
}

var lastDate atomic.Pointer[dateField]

// writeDate writes the current Date field value.
func writeDate(w *bufio.Writer) {
	now := time.Now()
	d := lastDate.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateField{sec: now.Unix(), text: now.UTC().AppendFormat(nil, http.TimeFormat)}
		lastDate.Store(d)
	}
	_, _ = w.Write(d.text)
}

// acquire is a backend connection for the request: the connection's own
// on a PROXY route, else an idle pooled one or a new one (fresh forces a
// new one).
func (fc *fastConn) acquire(fresh bool) (*backendConn, error) {
	f := fc.f
	if f.route.SendProxyProtocol {
		if fc.own != nil && !fresh {
			b := fc.own
			fc.own = nil
			return b, nil
		}
		fc.own = nil
		return f.pool.dial(func(c net.Conn) error {
			_, err := c.Write(proxyproto.AppendV2(make([]byte, 0, 64), fc.c.client, addrPort(fc.c.LocalAddr())))
			return err
		})
	}
	return f.pool.acquire(fresh)
}

// release keeps a backend connection that answered in full for the next
// request.
func (fc *fastConn) release(b *backendConn) {
	b.reused = true
	if fc.f.route.SendProxyProtocol {
		fc.own = b
		return
	}
	fc.f.pool.put(b)
}

// addFast and removeFast keep the front's fast connections, for
// shutdown.
func (f *l7Front) addFast(fc *fastConn) {
	f.fastMu.Lock()
	f.fast[fc] = struct{}{}
	f.fastMu.Unlock()
}

func (f *l7Front) removeFast(fc *fastConn) {
	f.fastMu.Lock()
	delete(f.fast, fc)
	f.fastMu.Unlock()
}

// stopFast ends the front's idle fast connections; the others end after
// their answer in flight (the drain closes what is still open when its
// time is up).
func (f *l7Front) stopFast() {
	f.stopping.Store(true)
	f.fastMu.Lock()
	defer f.fastMu.Unlock()
	for fc := range f.fast {
		if fc.idle.Load() {
			fc.tc.SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck,gosec // wakes the idle read
		}
	}
}
