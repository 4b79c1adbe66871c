package apierr_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

var (
	errNotFound = apierr.New(apierr.NotFound, "not found")
	errBadCreds = apierr.Opaque(apierr.Unauthenticated, "invalid credentials")
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		kind   apierr.Kind
		msg    string
		field  string
		retry  time.Duration
		status int
		code   codes.Code
	}{
		{"plain", errors.New("disk on fire"), apierr.Internal, "internal error", "", 0, 500, codes.Internal},
		{"wrapped sentinel", fmt.Errorf("%w: zone x", errNotFound), apierr.NotFound, "not found: zone x", "", 0, 404, codes.NotFound},
		{"opaque", fmt.Errorf("%w: user bob has no password", errBadCreds), apierr.Unauthenticated, "invalid credentials", "", 0, 401, codes.Unauthenticated},
		{"field", fmt.Errorf("create record: %w", apierr.InvalidField("ttl", "must be at least %d", 1)), apierr.Invalid, "create record: ttl: must be at least 1", "ttl", 0, 400, codes.InvalidArgument},
		{"retry", apierr.WithRetry(apierr.Opaque(apierr.Throttled, "slow down"), 1500*time.Millisecond), apierr.Throttled, "slow down", "", 1500 * time.Millisecond, 429, codes.ResourceExhausted},
		{"joined", errors.Join(errors.New("x"), errNotFound), apierr.NotFound, "x\nnot found", "", 0, 404, codes.NotFound},
		{"conflict", apierr.New(apierr.Conflict, "exists"), apierr.Conflict, "exists", "", 0, 409, codes.AlreadyExists},
		{"sealed", apierr.New(apierr.Unavailable, "sealed"), apierr.Unavailable, "sealed", "", 0, 503, codes.Unavailable},
		{"denied", apierr.New(apierr.Denied, "no"), apierr.Denied, "no", "", 0, 403, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := apierr.Describe(tc.err)
			if st.Kind != tc.kind || st.Message != tc.msg || st.Field != tc.field || st.RetryAfter != tc.retry {
				t.Fatalf("Describe = %+v, want kind %v msg %q field %q retry %v", st, tc.kind, tc.msg, tc.field, tc.retry)
			}
			if st.HTTPStatus() != tc.status {
				t.Errorf("HTTP status %d, want %d", st.HTTPStatus(), tc.status)
			}
			gerr := apierr.GRPC(nil, tc.err)
			if status.Code(gerr) != tc.code {
				t.Errorf("gRPC code %v, want %v", status.Code(gerr), tc.code)
			}
			// The round trip through gRPC keeps everything a caller sees.
			back := apierr.FromGRPC(gerr)
			if back != st {
				t.Errorf("FromGRPC(GRPC(err)) = %+v, want %+v", back, st)
			}
			remote := apierr.FromGRPCError("svc", gerr)
			if apierr.KindOf(remote) != tc.kind || !strings.HasPrefix(remote.Error(), "svc: ") {
				t.Errorf("remote error %q kind %v", remote, apierr.KindOf(remote))
			}
		})
	}
}

func TestWriteHTTP(t *testing.T) {
	var logged strings.Builder
	logger := slog.New(slog.NewTextHandler(&logged, nil))
	for _, tc := range []struct {
		err     error
		status  int
		body    apierr.Body
		headers map[string]string
	}{
		{errors.New("secret detail"), 500, apierr.Body{Error: "internal error"}, nil},
		{apierr.InvalidField("name", "required"), 400, apierr.Body{Error: "name: required", Field: "name"}, nil},
		{apierr.WithRetry(apierr.New(apierr.Throttled, "later"), 1100*time.Millisecond), 429, apierr.Body{Error: "later"}, map[string]string{"Retry-After": "2"}},
		{errBadCreds, 401, apierr.Body{Error: "invalid credentials"}, map[string]string{"WWW-Authenticate": `Bearer realm="metacircular"`}},
	} {
		rec := httptest.NewRecorder()
		apierr.WriteHTTP(rec, logger, tc.err)
		resp := rec.Result()
		raw, _ := io.ReadAll(resp.Body)
		var body apierr.Body
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("body %q: %v", raw, err)
		}
		if resp.StatusCode != tc.status || body != tc.body {
			t.Errorf("%v: %d %+v, want %d %+v", tc.err, resp.StatusCode, body, tc.status, tc.body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%v: Content-Type %q", tc.err, ct)
		}
		for k, v := range tc.headers {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%v: %s = %q, want %q", tc.err, k, got, v)
			}
		}
	}
	if !strings.Contains(logged.String(), "secret detail") {
		t.Errorf("internal error not logged: %q", logged.String())
	}
}

func TestKindTables(t *testing.T) {
	for k := apierr.Internal; k <= apierr.Unimplemented; k++ {
		if got := apierr.KindOfGRPC(k.GRPCCode()); got != k {
			t.Errorf("KindOfGRPC(%v.GRPCCode()) = %v", k, got)
		}
		if got := apierr.KindOfHTTP(k.HTTPStatus()); got != k {
			t.Errorf("KindOfHTTP(%v.HTTPStatus()) = %v", k, got)
		}
		if strings.HasPrefix(k.String(), "kind(") {
			t.Errorf("kind %d has no name", k)
		}
	}
	if apierr.KindOfHTTP(http.StatusTeapot) != apierr.Internal {
		t.Error("an unknown HTTP status is not Internal")
	}
	if !apierr.Is(fmt.Errorf("x: %w", errNotFound), apierr.NotFound) || apierr.Is(nil, apierr.Internal) {
		t.Error("Is")
	}
	if !errors.Is(fmt.Errorf("a: %w", errNotFound), errNotFound) {
		t.Error("sentinels must match with errors.Is")
	}
}

func TestGRPCPassesStatusThrough(t *testing.T) {
	in := status.Error(codes.Aborted, "raced")
	if out := apierr.GRPC(nil, in); out != in { //nolint:errorlint // identity is the point
		t.Fatalf("status error changed: %v", out)
	}
	if apierr.FromGRPC(errors.New("connection refused")).Kind != apierr.Unavailable {
		t.Error("a transport failure is not Unavailable")
	}
}

func TestContextErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("query: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
	} {
		if st := apierr.Describe(tc.err); st.Kind != apierr.Unavailable {
			t.Errorf("%v: kind %v, want Unavailable (not an internal error)", tc.err, st.Kind)
		}
		if got := status.Code(apierr.GRPC(nil, tc.err)); got != tc.code {
			t.Errorf("%v: gRPC %v, want %v", tc.err, got, tc.code)
		}
	}
}
