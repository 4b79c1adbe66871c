package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
)

// fakeAuth answers AuthService.ValidateToken with a fixed outcome and
// records what each call carried.
type fakeAuth struct {
	resp *mciasv1.ValidateTokenResponse
	err  error

	mu    sync.Mutex
	calls []string // token and peer of each call
}

func (f *fakeAuth) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	if method != mciasv1.AuthService_ValidateToken_FullMethodName {
		return status.Errorf(codes.Unimplemented, "fake: %s", method)
	}
	p := "no peer"
	if pr, ok := peer.FromContext(ctx); ok {
		p = pr.Addr.String()
	}
	req, ok := args.(*mciasv1.ValidateTokenRequest)
	if !ok {
		return status.Errorf(codes.Internal, "fake: request %T", args)
	}
	f.mu.Lock()
	f.calls = append(f.calls, req.GetToken()+" from "+p)
	f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	out, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "fake: reply %T", reply)
	}
	proto.Reset(out)
	proto.Merge(out, f.resp)
	return nil
}

func (f *fakeAuth) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "fake: no streams")
}

func (f *fakeAuth) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// answer is what a handler wrote.
type answer struct {
	code   int
	header http.Header
	body   string
	calls  []string
}

// pair is the generated gateway alone and the fast path in front of it,
// on one fake; fallbacks counts the requests the fast path handed on.
type pair struct {
	fake      *fakeAuth
	gw        http.Handler
	fast      http.Handler
	fallbacks int
}

func newPair(t testing.TB, fake *fakeAuth) *pair {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	gw, err := gateway.New(fake, gateway.Options{Status: restStatus, Logger: logger},
		gateway.Service(mciasv1.RegisterAuthServiceHandlerClient, mciasv1.NewAuthServiceClient))
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{fake: fake, gw: gw}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fallbacks++
		gw.ServeHTTP(w, r)
	})
	p.fast = newValidateREST(mciasv1.NewAuthServiceClient(fake), counted, logger)
	return p
}

// request is one REST request to send to both.
type request struct {
	method string
	target string
	body   []byte
	header map[string][]string
	// noLength sends the body without a declared length.
	noLength bool
}

func (p *pair) serve(h http.Handler, rq request) answer {
	req := httptest.NewRequestWithContext(context.Background(), rq.method, rq.target, bytes.NewReader(rq.body))
	if rq.body == nil {
		req = httptest.NewRequestWithContext(context.Background(), rq.method, rq.target, nil)
	}
	if rq.noLength {
		req.ContentLength = -1
		req.Body = io.NopCloser(bytes.NewReader(rq.body))
	}
	for k, vs := range rq.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{code: rec.Code, header: rec.Header(), body: rec.Body.String(), calls: p.fake.takeCalls()}
}

// compare sends rq to the gateway and to the fast path and fails unless
// the answers and the RPCs made are the same; it returns whether the fast
// path answered by itself.
func (p *pair) compare(t testing.TB, rq request) bool {
	t.Helper()
	want := p.serve(p.gw, rq)
	before := p.fallbacks
	got := p.serve(p.fast, rq)
	if got.code != want.code || got.body != want.body || !sameHeader(got.header, want.header) || !slices.Equal(got.calls, want.calls) {
		t.Fatalf("%s %s %q %v:\n fast:    %d %v %q calls %q\n gateway: %d %v %q calls %q",
			rq.method, rq.target, rq.body, rq.header, got.code, got.header, got.body, got.calls, want.code, want.header, want.body, want.calls)
	}
	return p.fallbacks == before
}

func sameHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func jsonReq(body string) request {
	return request{method: http.MethodPost, target: validatePath, body: []byte(body),
		header: map[string][]string{"Content-Type": {"application/json"}}}
}

func str(s string) *string { return &s }

func roles(vs ...any) *structpb.ListValue {
	l, err := structpb.NewList(vs)
	if err != nil {
		panic(err)
	}
	return l
}

// TestValidateRESTMatchesGateway: for every answer the RPC can give and
// every request shape, the fast path answers what the generated gateway
// answers — status, every header, every byte — and makes the same RPC;
// and it answers the requests services send by itself.
func TestValidateRESTMatchesGateway(t *testing.T) {
	exp := time.Date(2026, 12, 1, 1, 2, 3, 0, time.UTC)
	valid := func(mod func(*mciasv1.ValidateTokenResponse)) *mciasv1.ValidateTokenResponse {
		r := &mciasv1.ValidateTokenResponse{Valid: true, Subject: str("6f1c0c1e-8f7e-4a43-9d55-0b4d2d7e5a10"), Username: str("alice"),
			AccountType: str("human"), Roles: roles("admin", "user"), ExpiresAt: timestamppb.New(exp)}
		if mod != nil {
			mod(r)
		}
		return r
	}
	outcomes := map[string]*fakeAuth{
		"invalid":  {resp: &mciasv1.ValidateTokenResponse{Valid: false}},
		"valid":    {resp: valid(nil)},
		"no roles": {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.Roles = roles() })},
		"system":   {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.AccountType = str("system"); r.Roles = roles() })},
		"millis":   {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.ExpiresAt.Nanos = 120_000_000 })},
		"micros":   {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.ExpiresAt.Nanos = 123_456_000 })},
		"nanos":    {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.ExpiresAt.Nanos = 1 })},
		"year 1": {resp: valid(func(r *mciasv1.ValidateTokenResponse) {
			r.ExpiresAt = timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
		})},
		"year 9999": {resp: valid(func(r *mciasv1.ValidateTokenResponse) {
			r.ExpiresAt = timestamppb.New(time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC))
		})},
		"year 10000": {resp: valid(func(r *mciasv1.ValidateTokenResponse) {
			r.ExpiresAt = timestamppb.New(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
		})},
		"bad nanos":     {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.ExpiresAt.Nanos = -1 })},
		"escapes":       {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.Username = str("a\"b\\c\x01\u2028<&>é") })},
		"role escapes":  {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.Roles = roles("ad\"min", "\t") })},
		"number role":   {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.Roles = roles("user", 7) })},
		"no expiry":     {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.ExpiresAt = nil })},
		"valid, bare":   {resp: &mciasv1.ValidateTokenResponse{Valid: true}},
		"invalid utf-8": {resp: valid(func(r *mciasv1.ValidateTokenResponse) { r.Username = str("\xff") })},
		"unavailable":   {err: apierr.GRPC(nil, apierr.New(apierr.Unavailable, "identity service unavailable"))},
		"busy":          {err: apierr.GRPC(nil, apierr.WithRetry(apierr.New(apierr.Unavailable, "too busy"), time.Second))},
		"bad field":     {err: apierr.GRPC(nil, apierr.InvalidField("token", "bad"))},
		"internal":      {err: status.Error(codes.Internal, "internal error")},
		"unauth":        {err: status.Error(codes.Unauthenticated, "no")},
		"plain error":   {err: errors.New("connection reset")},
	}
	requests := map[string]struct {
		rq   request
		fast bool // the fast path must answer it by itself
	}{
		"canonical":           {jsonReq(`{"token":"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"}`), true},
		"whitespace":          {jsonReq(" \t\r\n{ \"token\" :\n\"abc\" }\n "), true},
		"empty token":         {jsonReq(`{"token":""}`), true},
		"punctuation":         {jsonReq(`{"token":" !#$%&'()*+,-./:;<=>?@[]^_{|}~"}`), true},
		"escape":              {jsonReq(`{"token":"a\u0062c"}`), false},
		"escaped quote":       {jsonReq(`{"token":"a\"b"}`), false},
		"non-ascii":           {jsonReq(`{"token":"é"}`), false},
		"invalid utf-8":       {jsonReq("{\"token\":\"\xff\"}"), false},
		"control char":        {jsonReq("{\"token\":\"a\x01b\"}"), false},
		"unknown member":      {jsonReq(`{"token":"x","extra":1}`), false},
		"duplicate":           {jsonReq(`{"token":"a","token":"b"}`), false},
		"capitalized":         {jsonReq(`{"Token":"x"}`), false},
		"null":                {jsonReq(`{"token":null}`), false},
		"number":              {jsonReq(`{"token":5}`), false},
		"trailing":            {jsonReq(`{"token":"x"} {}`), false},
		"trailing garbage":    {jsonReq(`{"token":"x"}x`), false},
		"truncated":           {jsonReq(`{"token":"x"`), false},
		"empty object":        {jsonReq(`{}`), false},
		"array":               {jsonReq(`["token"]`), false},
		"bom":                 {jsonReq("\ufeff{\"token\":\"x\"}"), false},
		"form feed":           {jsonReq("\f{\"token\":\"x\"}"), false},
		"only space":          {jsonReq(" "), false},
		"empty body":          {jsonReq(""), false},
		"too large":           {jsonReq(`{"token":"` + strings.Repeat("a", gateway.DefaultMaxBody) + `"}`), false},
		"undeclared length":   {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), noLength: true, header: map[string][]string{"Content-Type": {"application/json"}}}, false},
		"charset":             {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}}, false},
		"text/plain":          {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"text/plain"}}}, false},
		"no content type":     {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`)}, false},
		"two content types":   {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json", "text/plain"}}}, false},
		"query":               {request{method: http.MethodPost, target: validatePath + "?token=y", body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}}}, true},
		"te trailers":         {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "Te": {"trailers"}}}, false},
		"grpc-timeout":        {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "Grpc-Timeout": {"5S"}}}, false},
		"bad grpc-timeout":    {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "Grpc-Timeout": {"soon"}}}, false},
		"get":                 {request{method: http.MethodGet, target: validatePath}, false},
		"put":                 {request{method: http.MethodPut, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}}}, false},
		"bearer alongside":    {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "Authorization": {"Bearer y"}}}, true},
		"accept other":        {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "Accept": {"text/html"}}}, true},
		"forwarded for":       {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "X-Forwarded-For": {"203.0.113.9"}}}, true},
		"method override":     {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "X-Http-Method-Override": {"GET"}}}, true},
		"grpc-metadata":       {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "Grpc-Metadata-Foo": {"bar"}}}, true},
		"binary metadata bad": {request{method: http.MethodPost, target: validatePath, body: []byte(`{"token":"x"}`), header: map[string][]string{"Content-Type": {"application/json"}, "Grpc-Metadata-Foo-Bin": {"!!"}}}, true},
	}
	for oname, fake := range outcomes {
		p := newPair(t, fake)
		for rname, tc := range requests {
			t.Run(oname+"/"+rname, func(t *testing.T) {
				if fast := p.compare(t, tc.rq); tc.fast && !fast {
					t.Fatal("the fast path handed a request it should answer to the gateway")
				}
			})
		}
	}
}

// FuzzValidateRESTMatchesGateway: whatever the body, the fast path and the
// gateway answer alike (the fast path's parser reads untrusted bytes).
func FuzzValidateRESTMatchesGateway(f *testing.F) {
	for _, seed := range []string{
		`{"token":"a.b.c"}`, ` {"token" : "x"} `, `{"token":""}`, `{"token":"a\u0062"}`, `{"token":"x","y":1}`,
		`{"token":null}`, `{"token":"x"}{}`, `{"token":"x"`, `{}`, "", " ", "\ufeff{\"token\":\"x\"}", `{"token":"é"}`,
	} {
		f.Add([]byte(seed))
	}
	p := newPair(f, &fakeAuth{resp: &mciasv1.ValidateTokenResponse{Valid: true, Subject: str("s"), Username: str("u"),
		AccountType: str("human"), Roles: roles("user"), ExpiresAt: timestamppb.New(time.Unix(1800000000, 0))}})
	f.Fuzz(func(t *testing.T, body []byte) {
		p.compare(t, jsonReq(string(body)))
	})
}
