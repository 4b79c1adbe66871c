package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"

	"git.metacircular.net/metacircular/mcdsl/httpserver"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// The L7 forwarding path. It does what httputil.ReverseProxy did for
// mc-proxy (hop-by-hop headers removed both ways, client forwarding
// headers replaced, 1xx answers relayed, trailers, 101 upgrades spliced,
// a failed body copy aborting the client's response) with what a
// profile of mc-proxy under load asked for:
//
//   - one allocation holds the request's state (exchange): the outgoing
//     URL, the forwarding header values and the 1xx trace, instead of a
//     cloned request, a cloned header map and its values, a ProxyRequest,
//     a trace closure and a mutex of their own;
//   - copy buffers come from a pool (ReverseProxy allocated 32 KiB per
//     request: 80% of the bytes mc-proxy allocated);
//   - no timer and no goroutine per request: ReverseProxy with
//     FlushInterval -1 started a timer whose goroutine flushed the
//     response header on its own, a write (and a TLS record) more per
//     answer;
//   - the header of an answer with a known length goes out with its first
//     body bytes; see copyBody for when the proxy flushes.

// exchange is one request on its way through the proxy.
type exchange struct {
	f       *l7Front
	w       http.ResponseWriter
	in      *http.Request
	route   route.Route
	metrics *routeMetrics
	// code is the status answered (200 until known), for the metrics.
	code int
	// closeAfter asks for Connection: close on the answer (HTTP/1.1 on a
	// front whose route changed).
	closeAfter bool
	// body is the client's request body, nil when there is none.
	body *clientBody

	url   url.URL
	trace httptrace.ClientTrace
	// fwd holds X-Forwarded-For, X-Real-IP and X-Forwarded-Host, so the
	// outgoing header's values need no allocation of their own.
	fwd [3]string

	// mu orders 1xx answers relayed by the transport's goroutine against
	// the end of RoundTrip (after which the header map is the final
	// answer's).
	mu            sync.Mutex
	roundTripDone bool
}

// Header values shared by every outgoing request; never modified.
var (
	valueHTTPS     = []string{"https"}
	valueTrailers  = []string{"trailers"}
	valueEmpty     = []string{""}
	valueUpgrade   = []string{"Upgrade"}
	valueConnClose = []string{"close"}
	valueHSTS      = []string{httpserver.HSTS}
)

var errUpgradeWrite = errors.New("proxy: 101 switching protocols response with a body that cannot be written to")

// isHopHeader reports whether a canonical header name is hop-by-hop
// (RFC 9110 §7.6.1, and the RFC 2616 list ReverseProxy removes for
// compatibility): never passed on in either direction.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// isForwardingHeader reports whether a canonical header name is one the
// proxy sets itself: a client's own is dropped, never passed on.
func isForwardingHeader(k string) bool {
	switch k {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip":
		return true
	}
	return false
}

// forward sends the request to the route's backend and relays the
// answer.
func (ex *exchange) forward() {
	r := ex.in
	upType := upgradeType(r.Header)
	if upType != "" && !isPrintASCII(upType) {
		ex.fail(fmt.Errorf("client tried to switch to invalid protocol %q", upType))
		return
	}
	ex.trace.Got1xxResponse = ex.got1xx
	out := r.WithContext(httptrace.WithClientTrace(r.Context(), &ex.trace))
	ex.setURL(r.URL)
	out.URL = &ex.url
	out.Host = ex.fwd[2]
	out.Header = ex.requestHeader(r.Header, upType)
	out.Close = false
	out.Body = nil
	if ex.body != nil && r.ContentLength != 0 {
		out.Body = ex.body
	}
	if p := ex.pooled(out, upType); p != nil {
		ex.forwardPooled(out, p)
		return
	}
	tr, err := ex.f.s.backend.transportFor(r.Context(), ex.route, upType != "")
	var res *http.Response
	if err == nil {
		res, err = tr.RoundTrip(out)
	}
	if !ex.roundTripEnded(err) {
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		edgeHeaders(res)
		ex.switchProtocols(res, upType)
		return
	}
	removeHopHeaders(res.Header)
	edgeHeaders(res)
	ex.relay(res)
}

// pooled is the backend pool (h1client.go) a request goes through instead
// of an http.Transport, or nil: requests without a body and without an
// upgrade, in a method of the fast path's, to a route of this front that
// speaks HTTP/1.1 to its backend and sends no PROXY header (those have
// backend connections of their own per client connection).
func (ex *exchange) pooled(out *http.Request, upType string) *backendPool {
	f := ex.f
	if f.pool == nil || f.s.noFast || ex.route != f.route || ex.route.SendProxyProtocol || upType != "" || out.Body != nil ||
		!slices.Contains(fastMethods[:], out.Method) || !safeHost(out.Host) {
		return nil
	}
	return f.pool
}

// forwardPooled does what forward does with an http.Transport over a
// connection of p: the handler's goroutine writes the request and reads
// the answer itself.
func (ex *exchange) forwardPooled(out *http.Request, p *backendPool) {
	h := out.Header
	if ua := h["User-Agent"]; len(ua) == 1 && ua[0] == "" {
		delete(h, "User-Agent") // as http.Transport leaves it out
	}
	uri := out.URL.RequestURI()
	// http.Transport says a POST, PUT or PATCH without a body has none.
	emptyBody := out.Method == http.MethodPost || out.Method == http.MethodPut || out.Method == http.MethodPatch
	res, b, stop, err := backendRoundTrip(ex.in.Context(), p.acquire, backendRequest{
		write: func(w *bufio.Writer) {
			_, _ = w.WriteString(out.Method)
			_ = w.WriteByte(' ')
			_, _ = w.WriteString(uri)
			_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
			_, _ = w.WriteString(out.Host)
			_, _ = w.WriteString("\r\n")
			if emptyBody {
				_, _ = w.WriteString("Content-Length: 0\r\n")
			}
			writeFields(w, h)
			_, _ = w.WriteString("\r\n")
		},
		head:       out.Method == http.MethodHead,
		on1xx:      func(res *http.Response) error { return ex.got1xx(res.StatusCode, textproto.MIMEHeader(res.Header)) },
		replayable: replayable(out.Method),
	})
	if !ex.roundTripEnded(err) {
		return
	}
	relayed := false
	defer func() {
		// relay panics (ErrAbortHandler) when the answer cannot be
		// completed; the connection then goes, as it does when the
		// client went away (its deadline may be in the past).
		if stop() && relayed && !res.Close && b.br.Buffered() == 0 {
			p.put(b)
		} else {
			b.close()
		}
	}()
	removeHopHeaders(res.Header)
	edgeHeaders(res)
	ex.relay(res)
	relayed = true
}

// setURL points the outgoing request at the backend (the path and query
// of the client's request, as ReverseProxy's SetURL with a target
// without a path) and fills the forwarding header values.
func (ex *exchange) setURL(in *url.URL) {
	ex.url = *in
	ex.url.Scheme = "http"
	if ex.route.BackendTLS {
		ex.url.Scheme = "https"
	}
	ex.url.Host = ex.route.Backend
	ex.url.User = nil
	if !strings.HasPrefix(ex.url.Path, "/") {
		ex.url.Path = "/" + ex.url.Path
		if ex.url.RawPath != "" {
			ex.url.RawPath = "/" + ex.url.RawPath
		}
	}
	ex.url.RawQuery = cleanQuery(ex.url.RawQuery)
	host := normalizeHostHeader(ex.in.Host)
	clientIP := hostOnly(ex.in.RemoteAddr)
	ex.fwd = [3]string{clientIP, clientIP, host}
}

// requestHeader is the header sent to the backend: the client's without
// hop-by-hop fields (those it names in Connection included) and without
// forwarding fields, plus the proxy's X-Forwarded-For, X-Real-IP,
// X-Forwarded-Proto and X-Forwarded-Host. X-Forwarded-For is replaced,
// not appended to: the proxy is the trust boundary, and the client
// address it knows (the peer, or a trusted PROXY header) is the only one
// it vouches for. Values are shared with the client's header, which
// nothing modifies once the handler runs.
func (ex *exchange) requestHeader(in http.Header, upType string) http.Header {
	h := make(http.Header, len(in)+5)
	for k, vv := range in {
		if !isHopHeader(k) && !isForwardingHeader(k) {
			h[k] = vv
		}
	}
	for _, v := range in["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	// Trailer support is announced only if the client announced it
	// (gRPC needs it); the client's TE is otherwise hop-by-hop.
	if hasToken(in["Te"], "trailers") {
		h["Te"] = valueTrailers
	}
	if upType != "" {
		h["Connection"] = valueUpgrade
		h["Upgrade"] = []string{upType}
	}
	if _, ok := h["User-Agent"]; !ok {
		// Nothing rather than Go's default User-Agent.
		h["User-Agent"] = valueEmpty
	}
	h["X-Forwarded-For"] = ex.fwd[0:1:1]
	h["X-Real-Ip"] = ex.fwd[1:2:2]
	h["X-Forwarded-Proto"] = valueHTTPS
	h["X-Forwarded-Host"] = ex.fwd[2:3:3]
	return h
}

// roundTripEnded marks the backend's final answer (or err) as come, after
// which got1xx relays nothing more, and answers the client with err's
// error page if there is one; it reports whether the answer can be
// relayed.
func (ex *exchange) roundTripEnded(err error) bool {
	ex.mu.Lock()
	ex.roundTripDone = true
	ex.mu.Unlock()
	if err != nil {
		ex.fail(err)
		return false
	}
	return true
}

// got1xx relays an informational answer (103 Early Hints, 100 Continue)
// from the backend while the final one is awaited.
func (ex *exchange) got1xx(code int, header textproto.MIMEHeader) error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.roundTripDone {
		return nil
	}
	h := ex.w.Header()
	for k, vv := range header {
		h[k] = append(h[k], vv...)
	}
	ex.w.WriteHeader(code)
	// WriteHeader does not clear the header map after a 1xx answer.
	clear(h)
	return nil
}

// edgeHeaders adds what every answer of the proxy carries: HSTS unless
// the backend sent its own policy (kept as it is: includeSubDomains,
// preload), and a gRPC trailers-only answer as headers followed by
// trailers (grpcTrailersOnly).
func edgeHeaders(res *http.Response) {
	if _, ok := res.Header["Strict-Transport-Security"]; !ok {
		res.Header["Strict-Transport-Security"] = valueHSTS
	}
	grpcTrailersOnly(res)
}

// grpcStatusFields are the gRPC status fields a trailers-only response
// carries in its single header block.
var grpcStatusFields = []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"}

// grpcTrailersOnly turns a gRPC trailers-only response (status in the one
// and only header block) into headers followed by trailers. Relayed as is,
// the immediate header flush of a streaming answer can send that block
// without END_STREAM, and the client then sees a status in the headers and
// a stream that ends without trailers. As headers + trailers the answer is
// equivalent and flush timing no longer matters.
func grpcTrailersOnly(res *http.Response) {
	if res.ProtoMajor != 2 || len(res.Trailer) > 0 || res.Header.Get("Grpc-Status") == "" || !isGRPC(res.Header) {
		return
	}
	res.Trailer = http.Header{}
	for _, k := range grpcStatusFields {
		if v, ok := res.Header[k]; ok {
			res.Trailer[k] = v
			delete(res.Header, k)
		}
	}
}

// relay writes the backend's answer to the client: header, body,
// trailers.
func (ex *exchange) relay(res *http.Response) {
	defer res.Body.Close() //nolint:errcheck // a read-only body
	dst := ex.w.Header()
	for k, vv := range res.Header {
		if prev, ok := dst[k]; ok {
			dst[k] = append(prev, vv...)
		} else {
			dst[k] = vv
		}
	}
	if ex.closeAfter {
		dst["Connection"] = valueConnClose
	}
	// The transport's answer has no Trailer field; announce what it
	// declared.
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	ex.code = res.StatusCode
	ex.w.WriteHeader(res.StatusCode)
	if err := ex.copyBody(res); err != nil {
		// The answer is streaming and cannot be taken back: abort it so
		// the client sees a truncated answer (a reset stream, a closed
		// connection), never a complete-looking one.
		level := slog.LevelWarn
		if ex.in.Context().Err() != nil {
			level = slog.LevelDebug // the client went away
		}
		ex.f.s.log.Log(ex.in.Context(), level, "l7: answer aborted", "listener", ex.f.ls.Name, "host", ex.route.Hostname,
			"backend", ex.route.Backend, "client", ex.in.RemoteAddr, "err", err)
		panic(http.ErrAbortHandler)
	}
	res.Body.Close() //nolint:errcheck,gosec // closing now fills res.Trailer
	if len(res.Trailer) == 0 {
		return
	}
	if fl, ok := ex.w.(http.Flusher); ok {
		// Forces chunking on HTTP/1.1, where net/http would otherwise
		// compute a length for a short body and drop the trailers.
		fl.Flush()
	}
	for k, vv := range res.Trailer {
		if len(res.Trailer) != announced {
			k = http.TrailerPrefix + k
		}
		dst[k] = append(dst[k], vv...)
	}
}

// copyBody streams the answer's body to the client. What the proxy has
// received it sends at once (a flush after every read): bytes are never
// held back waiting for more. Two exceptions save a write each: the
// header of an answer with a known length goes out with its first body
// bytes rather than alone, and the last bytes of such an answer are left
// for net/http to send with the end of the answer. An answer of unknown
// length (chunked, a gRPC or SSE stream) or an event stream gets its
// header flushed at once, as it may wait long for its first event.
func (ex *exchange) copyBody(res *http.Response) error {
	fl, _ := ex.w.(http.Flusher) // both net/http writers are
	streaming := res.ContentLength < 0 || isEventStream(res.Header)
	if streaming && fl != nil {
		fl.Flush()
	}
	bp, _ := bufPool.Get().(*[]byte) // the pool only holds *[]byte
	defer bufPool.Put(bp)
	buf := *bp
	var written int64
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, werr := ex.w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("write to client: %w", werr)
			}
			written += int64(n)
		}
		switch {
		case errors.Is(rerr, io.EOF):
			return nil
		case rerr != nil:
			return fmt.Errorf("read from backend: %w", rerr)
		}
		if n > 0 && fl != nil && (streaming || written < res.ContentLength) {
			fl.Flush()
		}
	}
}

// isEventStream reports whether an answer is Server-Sent Events
// (text/event-stream, whatever its parameters).
func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	const sse = "text/event-stream"
	if len(ct) < len(sse) || !strings.EqualFold(ct[:len(sse)], sse) {
		return false
	}
	rest := strings.TrimLeft(ct[len(sse):], " \t")
	return rest == "" || rest[0] == ';'
}

// switchProtocols completes an upgrade (websockets): it checks that the
// backend switched to the protocol the client asked for, sends the 101
// to the client, and splices the client's connection to the backend's
// until either ends or the request is cancelled.
func (ex *exchange) switchProtocols(res *http.Response, reqUpType string) {
	resUpType := upgradeType(res.Header)
	if !isPrintASCII(resUpType) {
		res.Body.Close() //nolint:errcheck,gosec // refused
		ex.fail(fmt.Errorf("backend tried to switch to invalid protocol %q", resUpType))
		return
	}
	if !strings.EqualFold(reqUpType, resUpType) {
		res.Body.Close() //nolint:errcheck,gosec // refused
		ex.fail(fmt.Errorf("backend tried to switch protocol %q when %q was requested", resUpType, reqUpType))
		return
	}
	backConn, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		res.Body.Close() //nolint:errcheck,gosec // refused
		ex.fail(errUpgradeWrite)
		return
	}
	conn, brw, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		backConn.Close() //nolint:errcheck,gosec // refused
		ex.fail(fmt.Errorf("hijack on protocol switch: %w", err))
		return
	}
	defer conn.Close() //nolint:errcheck // spliced connection
	// Cancelling the request closes the backend side, which ends both
	// copies.
	stop := context.AfterFunc(ex.in.Context(), func() { backConn.Close() }) //nolint:errcheck,gosec // ending the splice
	defer stop()
	defer backConn.Close() //nolint:errcheck // spliced connection
	ex.code = http.StatusSwitchingProtocols
	h := ex.w.Header()
	for k, vv := range res.Header {
		h[k] = append(h[k], vv...)
	}
	res.Header = h
	res.Body = nil // res.Write writes the header only; the body is backConn
	if err := res.Write(brw); err != nil {
		ex.f.s.log.Debug("l7: upgrade: write 101", "client", ex.in.RemoteAddr, "err", err)
		return
	}
	if err := brw.Flush(); err != nil {
		ex.f.s.log.Debug("l7: upgrade: flush 101", "client", ex.in.RemoteAddr, "err", err)
		return
	}
	// Bytes the client sent after its request are in brw's buffer.
	fromClient := io.MultiReader(io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), conn)
	errc := make(chan error, 2)
	go func() { errc <- spliceCopy(conn, backConn) }()
	go func() { errc <- spliceCopy(backConn, fromClient) }()
	// Both directions done, or one failed (the deferred closes end the
	// other).
	err = <-errc
	if err == nil {
		err = <-errc
	}
	if err != nil && !errors.Is(err, errCopyDone) {
		ex.f.s.log.Debug("l7: upgraded connection ended", "client", ex.in.RemoteAddr, "err", err)
	}
}

// spliceCopy copies src to dst; at src's end it half-closes dst when dst
// can, so the other direction keeps flowing.
func spliceCopy(dst io.Writer, src io.Reader) error {
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errCopyDone
}

var errCopyDone = errors.New("proxy: spliced connection copy complete")

// fail answers a request the proxy could not complete: 400 when reading
// the client's body failed (a malformed chunked body is the client's
// fault and must not look like a backend failure), 502 otherwise.
func (ex *exchange) fail(err error) {
	r := ex.in
	if bodyErr := ex.body.failed(); bodyErr != nil {
		level := slog.LevelInfo
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the client went away
		}
		ex.f.s.log.Log(r.Context(), level, "l7: bad request body; answered 400", "listener", ex.f.ls.Name, "host", ex.route.Hostname,
			"client", r.RemoteAddr, "err", bodyErr)
		ex.refuse(http.StatusBadRequest, "bad request body")
		return
	}
	level := slog.LevelWarn
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away mid-request: not a backend problem.
		level = slog.LevelDebug
	}
	ex.f.s.log.Log(r.Context(), level, "l7: backend error", "listener", ex.f.ls.Name, "host", ex.route.Hostname,
		"backend", ex.route.Backend, "backend_protocol", ex.route.BackendProtocol, "client", r.RemoteAddr, "err", err)
	h := ex.w.Header()
	h["Strict-Transport-Security"] = valueHSTS
	if ex.closeAfter {
		h["Connection"] = valueConnClose
	}
	ex.code = http.StatusBadGateway
	ex.w.WriteHeader(http.StatusBadGateway)
}

// refuse answers a request mc-proxy does not pass on; on HTTP/1.1 the
// connection is closed afterwards.
func (ex *exchange) refuse(code int, msg string) {
	h := ex.w.Header()
	h["Strict-Transport-Security"] = valueHSTS
	if ex.in.ProtoMajor == 1 {
		h["Connection"] = valueConnClose
	}
	ex.code = code
	http.Error(ex.w, msg, code)
}

// upgradeType is the protocol a request or answer asks to switch to
// (Connection: upgrade with an Upgrade field), or "".
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

func isPrintASCII(s string) bool {
	for i := range len(s) {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// cleanQuery drops what Go's URL query parser refuses from a query
// string (as ReverseProxy did before passing a request on): a query
// with a semicolon or a bad percent escape is re-encoded from what
// parses, so the backend and the proxy cannot read different
// parameters. A clean query is returned as it is, without allocating.
func cleanQuery(q string) string {
	const maxParams = 10000 // net/url's default limit
	clean := strings.Count(q, "&") < maxParams
	for i := 0; clean && i < len(q); {
		switch q[i] {
		case ';':
			clean = false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				clean = false
			}
			i += 3
		default:
			i++
		}
	}
	if clean {
		return q
	}
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// removeHopHeaders removes an answer's hop-by-hop fields: the fixed ones
// and those its Connection field names.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for k := range h {
		if isHopHeader(k) {
			delete(h, k)
		}
	}
}
