package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/auth/authtest"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	mcdslv1 "git.metacircular.net/metacircular/mcdsl/gen/mcdsl/v1"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/metrics"
)

// fakeSnapshots answers SnapshotService.Snapshot as the test tells it to,
// and records the caller and peer it saw.
type fakeSnapshots struct {
	mcdslv1.UnimplementedSnapshotServiceServer
	fail     atomic.Pointer[error]
	lastUser atomic.Pointer[string]
	lastPeer atomic.Pointer[string]
}

func (f *fakeSnapshots) Snapshot(ctx context.Context, _ *mcdslv1.SnapshotRequest) (*mcdslv1.SnapshotResponse, error) {
	if id, ok := auth.IdentityFrom(ctx); ok {
		f.lastUser.Store(&id.Username)
	}
	if p, ok := peer.FromContext(ctx); ok {
		s := p.Addr.String()
		f.lastPeer.Store(&s)
	}
	if e := f.fail.Load(); e != nil {
		return nil, *e
	}
	return &mcdslv1.SnapshotResponse{
		Path: "/srv/x/backups/x.db", SizeBytes: 1 << 40,
		CreatedAt: timestamppb.New(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)),
	}, nil
}

const method = "/mcdsl.v1.SnapshotService/Snapshot"

// register binds the snapshot RPC to three routes the way generated
// gateway code does (this package cannot depend on a service's protos):
// POST /v1/snapshots (body, 201), GET /v1/snapshot (query parameters) and
// DELETE /v1/snapshot (204).
func register(_ context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
	client := mcdslv1.NewSnapshotServiceClient(conn)
	handle := func(verb, path, rpc string, body bool) error {
		return mux.HandlePath(verb, path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			inbound, outbound := runtime.MarshalerForRequest(mux, r)
			actx, err := runtime.AnnotateContext(r.Context(), mux, r, rpc, runtime.WithHTTPPathPattern(path))
			if err != nil {
				runtime.HTTPError(r.Context(), mux, outbound, w, r, err)
				return
			}
			var req mcdslv1.SnapshotRequest
			if body {
				if err := inbound.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
					runtime.HTTPError(actx, mux, outbound, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
					return
				}
			} else {
				if err := r.ParseForm(); err != nil {
					runtime.HTTPError(actx, mux, outbound, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
					return
				}
				if err := runtime.PopulateQueryParameters(&req, r.Form, &utilities.DoubleArray{}); err != nil {
					runtime.HTTPError(actx, mux, outbound, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
					return
				}
			}
			var md runtime.ServerMetadata
			resp, err := client.Snapshot(actx, &req, grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD))
			actx = runtime.NewServerMetadataContext(actx, md)
			if err != nil {
				runtime.HTTPError(actx, mux, outbound, w, r, err)
				return
			}
			runtime.ForwardResponseMessage(actx, mux, outbound, w, r, resp, mux.GetForwardResponseOptions()...)
		})
	}
	if err := handle(http.MethodPost, "/v1/snapshots", method, true); err != nil {
		return err
	}
	if err := handle(http.MethodGet, "/v1/snapshot", method, false); err != nil {
		return err
	}
	// DELETE calls the same RPC under another name for the gateway, so its
	// success status (204) can be set apart from POST's (201).
	return handle(http.MethodDelete, "/v1/snapshot", "/mcdsl.v1.SnapshotService/Delete", false)
}

type env struct {
	url   string
	fake  *fakeSnapshots
	mcias *authtest.Server
	reg   *metrics.Registry
}

func setup(t *testing.T) *env {
	t.Helper()
	mcias := authtest.New(t)
	mcias.AddUser(authtest.User{Username: "alice", Roles: []string{"user"}})
	v, err := auth.New(mcias.Config("test"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.New()
	srv, err := grpcserver.New(grpcserver.Options{
		Service: "test", Validator: v, Metrics: reg,
		Maps: grpcserver.MethodMaps{AuthRequired: map[string]bool{method: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeSnapshots{}
	mcdslv1.RegisterSnapshotServiceServer(srv, fake)
	gw, err := gateway.New(srv.Local(), gateway.Options{Status: map[string]int{
		method:                             http.StatusCreated,
		"/mcdsl.v1.SnapshotService/Delete": http.StatusNoContent,
	}}, register)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(reg.Middleware(gw))
	t.Cleanup(ts.Close)
	return &env{url: ts.URL, fake: fake, mcias: mcias, reg: reg}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(t *testing.T, method, path, token, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func errorOf(t *testing.T, a answer) string {
	t.Helper()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Error == "" {
		t.Fatalf("error body %q: %v", a.body, err)
	}
	return body.Error
}

func TestSuccess(t *testing.T) {
	e := setup(t)
	tok := e.mcias.Token("alice")
	a := e.do(t, http.MethodPost, "/v1/snapshots", tok, "application/json", `{}`)
	if a.status != http.StatusCreated {
		t.Fatalf("POST = %d %s", a.status, a.body)
	}
	if a.header.Get("Content-Type") != "application/json" || a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", a.header)
	}
	// snake_case names, every field, int64 as a JSON number.
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if n, ok := got["size_bytes"].(json.Number); !ok || n.String() != "1099511627776" {
		t.Errorf("size_bytes = %#v (%s)", got["size_bytes"], a.body)
	}
	if got["created_at"] != "2026-11-30T10:00:00Z" || got["path"] != "/srv/x/backups/x.db" {
		t.Errorf("answer %s", a.body)
	}
	// Compact and stable: protojson's deliberate whitespace jitter is gone.
	if strings.ContainsAny(strings.TrimSuffix(a.body, "\n"), " \n") {
		t.Errorf("answer is not compact: %q", a.body)
	}
	// The handler saw the caller and the HTTP client's address as its peer.
	if u := e.fake.lastUser.Load(); u == nil || *u != "alice" {
		t.Errorf("caller %v", u)
	}
	if p := e.fake.lastPeer.Load(); p == nil || !strings.HasPrefix(*p, "127.0.0.1:") {
		t.Errorf("peer %v", p)
	}
	// An empty body is an empty request, not an error.
	if a := e.do(t, http.MethodPost, "/v1/snapshots", tok, "application/json", ""); a.status != http.StatusCreated {
		t.Errorf("empty body = %d %s", a.status, a.body)
	}
	if a := e.do(t, http.MethodGet, "/v1/snapshot", tok, "", ""); a.status != http.StatusCreated {
		t.Errorf("GET = %d %s", a.status, a.body)
	}
}

func TestErrors(t *testing.T) {
	e := setup(t)
	tok := e.mcias.Token("alice")
	big := `{"x":"` + strings.Repeat("a", gateway.DefaultMaxBody) + `"}`
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		mention                         string
	}{
		{"no token", http.MethodPost, "/v1/snapshots", "", `{}`, 401, "authentication required"},
		{"bad token", http.MethodPost, "/v1/snapshots", "nope", `{}`, 401, "invalid or expired token"},
		{"unknown field", http.MethodPost, "/v1/snapshots", tok, `{"color":"red"}`, 400, "unknown field"},
		{"trailing data", http.MethodPost, "/v1/snapshots", tok, `{} {}`, 400, "trailing data"},
		{"not json", http.MethodPost, "/v1/snapshots", tok, `nope`, 400, "request body"},
		{"too large", http.MethodPost, "/v1/snapshots", tok, big, 400, "larger than"},
		{"unknown query", http.MethodGet, "/v1/snapshot?colour=red", tok, "", 400, `"colour"`},
		{"no route", http.MethodGet, "/v1/nothing", tok, "", 404, "no such endpoint"},
		{"wrong method", http.MethodPut, "/v1/snapshots", tok, `{}`, 405, "method not allowed"},
	} {
		a := e.do(t, tc.method, tc.path, tc.token, "application/json", tc.body)
		if tc.name == "wrong method" {
			a = e.do(t, tc.method, tc.path, tc.token, "application/json; charset=utf-8", tc.body)
		}
		if a.status != tc.status || !strings.Contains(errorOf(t, a), tc.mention) {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, a.status, a.body, tc.status, tc.mention)
		}
		if tc.status == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no Bearer challenge", tc.name)
		}
	}
	// Only JSON bodies: form and text bodies are what another origin's page
	// can make a browser send without a CORS preflight.
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonp"} {
		a := e.do(t, http.MethodPost, "/v1/snapshots", tok, ct, `{}`)
		if a.status != http.StatusUnsupportedMediaType || !strings.Contains(errorOf(t, a), "application/json") {
			t.Errorf("Content-Type %q: %d %s, want 415", ct, a.status, a.body)
		}
	}
	if a := e.do(t, http.MethodPost, "/v1/snapshots", tok, "Application/JSON; charset=UTF-8", `{}`); a.status != http.StatusCreated {
		t.Errorf("JSON with parameters refused: %d %s", a.status, a.body)
	}
	if a := e.do(t, http.MethodPost, "/v1/snapshots", tok, "", ""); a.status != http.StatusCreated {
		t.Errorf("a POST without a body needs no Content-Type: %d %s", a.status, a.body)
	}
	// Domain errors keep their kind, text, field and retry delay.
	for _, tc := range []struct {
		err     error
		status  int
		message string
		header  [2]string
	}{
		{fmt.Errorf("%w: zone x", apierr.New(apierr.NotFound, "not found")), 404, "not found: zone x", [2]string{}},
		{apierr.InvalidField("ttl", "must be positive"), 400, "ttl: must be positive", [2]string{}},
		{apierr.WithRetry(apierr.Opaque(apierr.Throttled, "slow down"), 60*time.Second), 429, "slow down", [2]string{"Retry-After", "60"}},
		{errors.New("secret internals"), 500, "internal error", [2]string{}},
	} {
		err := tc.err
		e.fake.fail.Store(&err)
		a := e.do(t, http.MethodPost, "/v1/snapshots", tok, "application/json", `{}`)
		if a.status != tc.status || errorOf(t, a) != tc.message {
			t.Errorf("%v: %d %s, want %d %q", tc.err, a.status, a.body, tc.status, tc.message)
		}
		if tc.header[0] != "" && a.header.Get(tc.header[0]) != tc.header[1] {
			t.Errorf("%v: %s = %q", tc.err, tc.header[0], a.header.Get(tc.header[0]))
		}
	}
}

func TestNoContentAndMetrics(t *testing.T) {
	e := setup(t)
	a := e.do(t, http.MethodDelete, "/v1/snapshot", e.mcias.Token("alice"), "", "")
	if a.status != http.StatusNoContent || a.body != "" || a.header.Get("Content-Type") != "" {
		t.Fatalf("DELETE = %d %q %v, want 204 and no body", a.status, a.body, a.header)
	}
	mfs, err := e.reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					routes[l.GetValue()] = true
				}
			}
		}
	}
	if !routes["/v1/snapshot"] {
		t.Errorf("route labels %v lack the matched pattern", routes)
	}
}
