package jsonapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, http.StatusCreated, map[string]string{"id": "x"})
	if rec.Code != http.StatusCreated || strings.TrimSpace(rec.Body.String()) != `{"id":"x"}` ||
		rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answer: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
}

func TestRequireJSON(t *testing.T) {
	h := RequireJSON(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, tc := range []struct {
		ct, body string
		want     int
	}{
		{"application/json", "{}", 204},
		{"application/json; charset=utf-8", "{}", 204},
		{"text/plain", "{}", 415},
		{"application/x-www-form-urlencoded", "a=b", 415},
		{"", "{}", 415},
		{"", "", 204},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		if tc.ct != "" {
			r.Header.Set("Content-Type", tc.ct)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tc.want {
			t.Errorf("%q %q: %d, want %d", tc.ct, tc.body, rec.Code, tc.want)
		}
	}
}
