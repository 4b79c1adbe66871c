package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/jsonapi"
	"git.metacircular.net/metacircular/mcdsl/metrics"
)

// DefaultMaxBody bounds a request body.
const DefaultMaxBody = 64 << 10

// Options tunes the handler.
type Options struct {
	// Status is the success status per full method name
	// ("/pkg.Service/Method"), for answers other than 200: 201 for a
	// creation, 204 (the body is dropped) for a deletion.
	Status map[string]int
	// MaxBody bounds request bodies (default DefaultMaxBody).
	MaxBody int64
	// Logger receives errors the gateway itself hits. Nil discards.
	Logger *slog.Logger
}

// Registration binds one generated gRPC-gateway service to a connection.
type Registration func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error

// Service makes a Registration from a generated Register<Svc>HandlerClient
// function and New<Svc>Client constructor:
//
//	gateway.Service(zonev1.RegisterZoneServiceHandlerClient, zonev1.NewZoneServiceClient)
func Service[C any](register func(context.Context, *runtime.ServeMux, C) error, newClient func(grpc.ClientConnInterface) C) Registration {
	return func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
		return register(ctx, mux, newClient(conn))
	}
}

// Handler is the REST API of a service.
type Handler struct {
	mux     *runtime.ServeMux
	maxBody int64
}

var queryParserOnce sync.Once

// New builds the REST handler for the services in regs, calling them
// through conn (normally grpcserver.Server.Local()).
func New(conn grpc.ClientConnInterface, opts Options, regs ...Registration) (*Handler, error) {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	muxOpts := []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonMarshaler{maxBody: opts.MaxBody}),
		runtime.WithErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, logger, err)
		}),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, code int) {
			RoutingError(w, code)
		}),
		runtime.WithForwardResponseOption(statusOption(opts.Status)),
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithMiddlewares(routeLabel),
	}
	// The query parser is a grpc-gateway package variable; set it once,
	// before any mux serves, so concurrent construction does not race.
	queryParserOnce.Do(func() {
		runtime.SetQueryParameterParser(strictQuery{})(nil)
	})
	mux := runtime.NewServeMux(muxOpts...)
	ctx := context.Background()
	for _, reg := range regs {
		if err := reg(ctx, mux, conn); err != nil {
			return nil, fmt.Errorf("rest gateway: %w", err)
		}
	}
	return &Handler{mux: mux, maxBody: opts.MaxBody}, nil
}

// ServeHTTP serves one REST call.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.maxBody {
		apierr.WriteStatus(w, apierr.Status{Kind: apierr.Invalid,
			Message: "request body is larger than " + strconv.FormatInt(h.maxBody, 10) + " bytes"})
		return
	}
	if jsonapi.HasBody(r) && !jsonapi.IsJSON(r.Header.Get("Content-Type")) {
		// Form and text bodies are what a page on another origin can make
		// a browser send without asking (a CORS "simple request"); JSON
		// cannot be, so refusing the rest keeps those pages out.
		writeJSONError(w, http.StatusUnsupportedMediaType, jsonapi.UnsupportedMediaType)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	}
	// The handler sees the HTTP client as its gRPC peer: per-IP throttling
	// and logs work the same over both faces.
	if addr := clientAddr(r); addr != nil {
		r = r.WithContext(peer.NewContext(r.Context(), &peer.Peer{Addr: addr}))
	}
	h.mux.ServeHTTP(&answerWriter{ResponseWriter: w}, r)
}

func clientAddr(r *http.Request) net.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// writeJSONError answers {"error": msg} with a status code no apierr kind
// has (405, 415).
func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(apierr.Body{Error: msg})
}

// RoutingError answers a request no route matched: 404 "no such
// endpoint" or 405 "method not allowed", as JSON.
func RoutingError(w http.ResponseWriter, code int) {
	switch code {
	case http.StatusMethodNotAllowed:
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
	case http.StatusNotFound:
		apierr.WriteStatus(w, apierr.Status{Kind: apierr.NotFound, Message: "no such endpoint"})
	default:
		apierr.WriteStatus(w, apierr.Status{Kind: apierr.KindOfHTTP(code), Message: http.StatusText(code)})
	}
}

func writeError(w http.ResponseWriter, logger *slog.Logger, err error) {
	var he *runtime.HTTPStatusError
	if errors.As(err, &he) {
		msg := http.StatusText(he.HTTPStatus)
		if he.Err != nil {
			msg = he.Err.Error()
		}
		apierr.WriteStatus(w, apierr.Status{Kind: apierr.KindOfHTTP(he.HTTPStatus), Message: msg})
		return
	}
	st := apierr.FromGRPC(err)
	if st.Kind == apierr.Internal {
		logger.Error("rest gateway", "error", err)
	}
	apierr.WriteStatus(w, st)
}

// statusOption sets the success status of the methods that have one.
func statusOption(codes map[string]int) func(context.Context, http.ResponseWriter, proto.Message) error {
	return func(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
		m, ok := runtime.RPCMethod(ctx)
		if !ok {
			return nil
		}
		if code, ok := codes[m]; ok {
			w.WriteHeader(code)
		}
		return nil
	}
}

var captureRE = regexp.MustCompile(`=[^}]*}`)

// routeLabel names the request's route for mcdsl/metrics by its pattern
// ("/v1/zones/{zone}").
func routeLabel(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := runtime.HTTPPattern(r.Context()); ok {
			metrics.SetRoute(r.Context(), captureRE.ReplaceAllString(p.String(), "}"))
		}
		next(w, r, params)
	}
}

// answerWriter marks answers uncacheable and drops the body of a 204.
type answerWriter struct {
	http.ResponseWriter
	status int
}

func (w *answerWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if code == http.StatusNoContent {
		w.Header().Del("Content-Type")
		w.Header().Del("Content-Length")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.ResponseWriter.WriteHeader(code)
}

func (w *answerWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status == http.StatusNoContent {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes through.
func (w *answerWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
