package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
)

// validatePath is the REST rule of AuthService.ValidateToken
// (proto/mcias/v1/http.yaml).
const validatePath = "/v1/token/validate"

// validateREST serves the REST rule of AuthService.ValidateToken, the
// request every other service sends for every caller it has not cached,
// without grpc-gateway's runtime for the request they all send: POST,
// Content-Type exactly application/json, no TE or Grpc-Timeout header,
// and a body that is exactly one JSON object with the one member
// "token" holding a plain printable-ASCII string (a JWT is base64url and
// dots). For that request the gateway's work — routing, protojson
// decoding into the request message, metadata, protojson encoding and
// compacting of the answer — cost more server CPU than the validation
// behind it (bench/mcias: a POST with no token to check took about 230 µs
// through the gateway, 170 µs here, against 130 µs for an empty GET on
// the same stack); here the body is read by an exact parser, the
// RPC is called through the same in-process gRPC connection as the
// gateway's call (grpcserver.Server.Local: the same interceptor, metrics,
// log line and error mapping), and the answer is written as the gateway
// writes it, byte for byte. Every other request — another method, content
// type or shape, an escape in the string, a body too large — goes to the
// gateway untouched (the body read so far put back), so the generated
// REST face still decides every answer but this one, and
// TestValidateRESTMatchesGateway and FuzzValidateRESTMatchesGateway hold
// the two to the same bytes.
type validateREST struct {
	auth    mciasv1.AuthServiceClient
	gateway http.Handler
	maxBody int64
	logger  *slog.Logger
}

// newValidateREST serves validatePath with auth (a client over
// grpcserver.Server.Local) and hands everything else to rest, the
// generated gateway built with the default body bound.
func newValidateREST(auth mciasv1.AuthServiceClient, rest http.Handler, logger *slog.Logger) *validateREST {
	return &validateREST{auth: auth, gateway: rest, maxBody: gateway.DefaultMaxBody, logger: logger}
}

func (h *validateREST) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.plain(r) {
		h.gateway.ServeHTTP(w, r)
		return
	}
	// plain bounded the declared length, and the server holds the body
	// to it: read exactly that much.
	body := make([]byte, r.ContentLength)
	n, err := io.ReadFull(r.Body, body)
	body = body[:n]
	tok, ok := tokenMember(body)
	if err != nil || !ok {
		// Put back what was read, in front of what was not (or of the
		// read error), and let the gateway answer.
		r.Body = replayBody{Reader: io.MultiReader(bytes.NewReader(body), r.Body), Closer: r.Body}
		h.gateway.ServeHTTP(w, r)
		return
	}
	ctx := r.Context()
	// As the gateway does: the RPC sees the HTTP client as its peer.
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: net.TCPAddrFromAddrPort(ap)})
	}
	resp, err := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: tok})
	if err != nil {
		h.writeError(w, err)
		return
	}
	out, err := encodeValidation(resp)
	if err != nil {
		h.writeError(w, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	_, _ = w.Write(out) //nolint:gosec // JSON (application/json) that encodeValidation built from the RPC answer, as the gateway writes it
}

// plain reports whether r is the request the fast path takes; only its
// body is still to be checked. Each condition is something the gateway
// reads: TE: trailers (trailer forwarding), Grpc-Timeout (a deadline),
// another content type (415, or another spelling of JSON), a declared
// length over the bound (400) or none.
func (h *validateREST) plain(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	return r.Method == http.MethodPost &&
		len(ct) == 1 && ct[0] == "application/json" &&
		r.ContentLength > 0 && r.ContentLength <= h.maxBody && r.Body != nil &&
		r.Header.Get("Te") == "" && r.Header.Get("Grpc-Timeout") == ""
}

// writeError answers an RPC error as the gateway does (mcdsl/gateway:
// the apierr kind's status and {"error": ...}; internal errors logged).
func (h *validateREST) writeError(w http.ResponseWriter, err error) {
	st := apierr.FromGRPC(err)
	if st.Kind == apierr.Internal {
		h.logger.Error("rest gateway", "error", err)
	}
	apierr.WriteStatus(w, st)
}

// replayBody is a request body with what a handler already read put back.
type replayBody struct {
	io.Reader
	io.Closer
}

// tokenMember returns the string of body when body is exactly
// ws '{' ws "token" ws ':' ws '"' chars '"' ws '}' ws, chars being
// printable ASCII other than '"' and '\': the one shape the fast path
// decodes. Anything else (escapes, other members, duplicates, nulls,
// non-ASCII) is for protojson, through the gateway.
func tokenMember(body []byte) (string, bool) {
	p := parser{b: body}
	p.ws()
	if !p.lit(`{`) {
		return "", false
	}
	p.ws()
	if !p.lit(`"token"`) {
		return "", false
	}
	p.ws()
	if !p.lit(`:`) {
		return "", false
	}
	p.ws()
	if !p.lit(`"`) {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) && plainByte(p.b[p.i]) {
		p.i++
	}
	tok := string(p.b[start:p.i])
	if !p.lit(`"`) {
		return "", false
	}
	p.ws()
	if !p.lit(`}`) {
		return "", false
	}
	p.ws()
	return tok, p.i == len(p.b)
}

// parser walks a byte slice.
type parser struct {
	b []byte
	i int
}

// ws skips JSON whitespace (RFC 8259: space, tab, LF, CR).
func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// lit consumes s if the input continues with it.
func (p *parser) lit(s string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		return false
	}
	p.i += len(s)
	return true
}

// plainByte: printable ASCII that JSON writes as itself (no '"', no '\').
func plainByte(c byte) bool { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' }

func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			return false
		}
	}
	return true
}

// validationJSON is how mcdsl/gateway writes messages: protojson with the
// proto field names and unpopulated fields, compacted, one line.
var validationJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// encodeValidation writes resp as the gateway does. The answers MCIAS
// gives — plain ASCII strings, string roles, a timestamp in years
// 1..9999 — are written directly; anything else goes through protojson
// and a compaction, exactly the gateway's encoder (ValidateTokenResponse
// has no 64-bit integer field for it to rewrite).
func encodeValidation(resp *mciasv1.ValidateTokenResponse) ([]byte, error) {
	if b, ok := appendValidation(make([]byte, 0, 256), resp); ok {
		return b, nil
	}
	b, err := validationJSON.Marshal(resp)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(b) + 1)
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// appendValidation is the direct encoding, in protojson's field order
// (field numbers) with its forms: optional fields only when set, roles a
// JSON array of strings, expires_at RFC 3339 in UTC with 0, 3, 6 or 9
// fractional digits. It reports false for anything it does not write
// exactly as protojson would.
func appendValidation(b []byte, resp *mciasv1.ValidateTokenResponse) ([]byte, bool) {
	b = append(b, `{"valid":`...)
	b = strconv.AppendBool(b, resp.GetValid())
	for _, f := range []struct {
		name string
		v    *string
	}{{"subject", resp.Subject}, {"username", resp.Username}, {"account_type", resp.AccountType}} {
		if f.v == nil {
			continue
		}
		if !plainString(*f.v) {
			return nil, false
		}
		b = append(b, `,"`...)
		b = append(b, f.name...)
		b = append(b, `":"`...)
		b = append(b, *f.v...)
		b = append(b, '"')
	}
	if resp.Roles != nil {
		b = append(b, `,"roles":[`...)
		for i, v := range resp.Roles.GetValues() {
			s, ok := v.GetKind().(*structpb.Value_StringValue)
			if !ok || !plainString(s.StringValue) {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, s.StringValue...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if ts := resp.ExpiresAt; ts != nil {
		sec, nanos := ts.GetSeconds(), ts.GetNanos()
		// protojson's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
		if sec < -62135596800 || sec > 253402300799 || nanos < 0 || nanos >= 1e9 {
			return nil, false
		}
		b = append(b, `,"expires_at":"`...)
		b = time.Unix(sec, 0).UTC().AppendFormat(b, "2006-01-02T15:04:05")
		if nanos != 0 {
			frac := strconv.AppendInt(nil, int64(nanos)+1e9, 10)[1:] // nine digits
			for range 2 {
				if !bytes.HasSuffix(frac, []byte("000")) {
					break
				}
				frac = frac[:len(frac)-3]
			}
			b = append(b, '.')
			b = append(b, frac...)
		}
		b = append(b, `Z"`...)
	}
	b = append(b, "}\n"...)
	return b, true
}
