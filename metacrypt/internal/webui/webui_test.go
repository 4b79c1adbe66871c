package webui

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSubmissionsTakeOnce(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	s := newSubmissions()
	s.now = func() time.Time { return now }
	id := s.newID()
	if id2 := s.newID(); id2 == id {
		t.Fatal("two form ids alike")
	}
	if !s.take(id) {
		t.Fatal("a fresh id refused")
	}
	if s.take(id) {
		t.Fatal("an id taken twice")
	}
	s.giveBack(id)
	if !s.take(id) {
		t.Fatal("an id given back refused")
	}
	old := s.newID()
	now = now.Add(formTTL + time.Second)
	if s.take(old) {
		t.Fatal("an expired id taken")
	}
	future := s.newID()
	now = now.Add(-10 * time.Minute)
	if s.take(future) {
		t.Fatal("an id from the future taken")
	}
	for _, bad := range []string{"", "x", "abc.def", "zzzzzzzzzzzzzzzzz." + strings.Repeat("A", 22), s.newID() + "A", "!." + strings.Repeat("A", 22)} {
		if s.take(bad) {
			t.Errorf("malformed id %q taken", bad)
		}
	}
}

func TestSubmissionsBounded(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	s := newSubmissions()
	s.now = func() time.Time { return now }
	for range maxForms {
		if !s.take(s.newID()) {
			t.Fatal("refused below the bound")
		}
	}
	if s.take(s.newID()) {
		t.Fatal("taken beyond the bound while every id is recent")
	}
	now = now.Add(formTTL + time.Minute)
	if !s.take(s.newID()) || len(s.taken) != 1 {
		t.Fatalf("expired ids not dropped: %d kept", len(s.taken))
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/mounts/pki/certs?status=valid": "/mounts/pki/certs?status=valid",
		"/":                              "/",
		"":                               "/",
		"//evil.example/x":               "/",
		"/\\evil.example":                "/",
		"https://evil.example/":          "/",
		"javascript:alert(1)":            "/",
		"mounts":                         "/",
		"/x\r\nSet-Cookie: a=b":          "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestList(t *testing.T) {
	got := list(" a.example, b.example\r\nc.example\t,, d ")
	if want := []string{"a.example", "b.example", "c.example", "d"}; !slices.Equal(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
	if len(list("  ,\n")) != 0 {
		t.Fatal("an empty field is not an empty list")
	}
}

func TestPEMURLCarriesTheText(t *testing.T) {
	u := string(pemURL("-----BEGIN PRIVATE KEY-----\nAB+/=\n-----END PRIVATE KEY-----\n"))
	if !strings.HasPrefix(u, "data:application/x-pem-file;base64,") || strings.ContainsAny(u, "\"'<> \n") {
		t.Fatalf("pemURL = %q", u)
	}
}

// TestUnknownPathsAreJSON404: the UI answers only its own routes; others
// get the API's JSON 404, before any CSRF check.
func TestUnknownPathsAreJSON404(t *testing.T) {
	ui, err := New(Deps{CSRFKey: make([]byte, 32), SSO: SSO{MCIASURL: "https://mcias.test", ClientID: "metacrypt", RedirectURI: "https://metacrypt.test/sso/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/nope"}, {"POST", "/nope"}, {"GET", "/mounts/pki/certs/x/y"}, {"DELETE", "/policy"}} {
		rec := httptest.NewRecorder()
		ui.ServeHTTP(rec, httptest.NewRequest(tc.method, "https://metacrypt.test"+tc.path, nil))
		if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), "no such endpoint") {
			t.Errorf("%s %s: %d %s %s", tc.method, tc.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	ui.ServeHTTP(rec, httptest.NewRequest("GET", "https://metacrypt.test/static/style.css", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Fatalf("style.css: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if _, err := New(Deps{CSRFKey: make([]byte, 16)}); err == nil {
		t.Fatal("a short CSRF key accepted")
	}
}
