package jsonapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

var errInvalid = errors.New("invalid request")

func TestDecode(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		in   string
		want string // "" means ok
	}{
		{`{"name":"x"}`, ""},
		{`{"name":"x","extra":1}`, "unknown field"},
		{`{"name":"x"} {"name":"y"}`, "trailing data"},
		{`{"name":`, "request body"},
		{`{"name":"` + strings.Repeat("a", MaxBody) + `"}`, "too large"},
	} {
		var b body
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.in))
		err := Decode(httptest.NewRecorder(), r, &b, errInvalid)
		if tc.want == "" {
			if err != nil || b.Name != "x" {
				t.Errorf("%.40s: %v %+v", tc.in, err, b)
			}
			continue
		}
		if !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40s: want %q wrapped in the sentinel, got %v", tc.in, tc.want, err)
		}
	}
}

func TestErrorBodyAndCodes(t *testing.T) {
	rec := httptest.NewRecorder()
	Error(rec, http.StatusConflict, "zone exists")
	if rec.Code != http.StatusConflict || strings.TrimSpace(rec.Body.String()) != `{"error":"zone exists"}` ||
		rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("error answer: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	for status, want := range map[int]codes.Code{400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied,
		404: codes.NotFound, 409: codes.AlreadyExists, 412: codes.FailedPrecondition, 429: codes.ResourceExhausted, 503: codes.Unavailable, 500: codes.Internal} {
		if got := GRPCCode(status); got != want {
			t.Errorf("GRPCCode(%d) = %v, want %v", status, got, want)
		}
	}
}
