package web

import (
	"bytes"
	"embed"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/csrf"
)

//go:embed testdata/templates
var templates embed.FS

func TestRenderWithLayoutEscapesAndCSRF(t *testing.T) {
	r, err := NewRenderer(templates, "testdata/templates/*.html", "testdata/templates/pages/*.html", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := csrf.New(bytes.Repeat([]byte("k"), 32), csrf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, req *http.Request) {
		_ = r.Render(w, http.StatusOK, "hello", "layout", map[string]any{
			"Name": "<script>x</script>", "CSRF": csrf.Token(req), "Flash": PopFlash(w, req),
		})
	})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, req *http.Request) {
		SetFlash(w, "saved")
		http.Redirect(w, req, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, _ *http.Request) {
		_ = r.Render(w, http.StatusOK, "broken", "layout", map[string]any{})
	})
	ts := httptest.NewTLSServer(p.Middleware(mux))
	defer ts.Close()
	client := ts.Client()
	client.Jar, _ = cookiejar.New(nil)

	resp, err := client.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	page := string(body)
	if !strings.Contains(page, "<title>Hello</title>") || !strings.Contains(page, "&lt;script&gt;") {
		t.Fatalf("layout or escaping wrong: %s", page)
	}
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("security headers missing: %v", resp.Header)
	}
	tok := between(page, `name="csrf_token" value="`, `"`)
	if tok == "" {
		t.Fatal("no CSRF token rendered")
	}
	// Without the token the mutation is rejected; with it, it succeeds and
	// the flash shows exactly once.
	resp, err = client.PostForm(ts.URL+"/", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("post without token: %d", resp.StatusCode)
	}
	resp, err = client.PostForm(ts.URL+"/", url.Values{"csrf_token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), `class="flash">saved`) {
		t.Fatalf("flash not shown after redirect: %s", body)
	}
	resp, err = client.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if strings.Contains(string(body), "saved") {
		t.Fatal("flash shown twice")
	}
	resp, err = client.Get(ts.URL + "/broken")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(body), "<html>") {
		t.Fatalf("broken template: %d %s", resp.StatusCode, body)
	}
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}

func TestSessionCookie(t *testing.T) {
	rec := httptest.NewRecorder()
	SetSession(rec, "", "tok", time.Now().Add(time.Hour))
	c := rec.Result().Cookies()[0]
	if c.Name != auth.DefaultCookieName || c.Value != "tok" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.MaxAge <= 0 {
		t.Fatalf("session cookie: %+v", c)
	}
	// The auth middleware reads the same cookie.
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(c)
	if tok, ok := auth.TokenFromRequest(req, ""); !ok || tok != "tok" {
		t.Fatalf("auth cannot read session cookie: %q", tok)
	}
	rec = httptest.NewRecorder()
	ClearSession(rec, "")
	c = rec.Result().Cookies()[0]
	if c.MaxAge >= 0 || c.Value != "" || !c.Secure || !c.HttpOnly {
		t.Fatalf("clear cookie: %+v", c)
	}
}

func TestRendererErrors(t *testing.T) {
	if _, err := NewRenderer(templates, "testdata/templates/*.html", "testdata/nothing/*.html", nil); err == nil {
		t.Fatal("no pages accepted")
	}
	r, err := NewRenderer(templates, "testdata/templates/*.html", "testdata/templates/pages/*.html", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Render(httptest.NewRecorder(), 200, "absent", "layout", nil); err == nil {
		t.Fatal("unknown page rendered")
	}
}

func TestAllowFormActions(t *testing.T) {
	r, err := NewRenderer(templates, "testdata/templates/*.html", "testdata/templates/pages/*.html", nil)
	if err != nil {
		t.Fatal(err)
	}
	csp := func() string {
		rec := httptest.NewRecorder()
		if err := r.Render(rec, http.StatusOK, "hello", "layout", map[string]any{"Name": "x", "CSRF": "t", "Flash": ""}); err != nil {
			t.Fatal(err)
		}
		return rec.Header().Get("Content-Security-Policy")
	}
	if got := csp(); !strings.HasSuffix(got, "form-action 'self'") {
		t.Fatalf("default CSP %q", got)
	}
	if err := r.AllowFormActions("https://mcr.svc.test", "https://wiki.example:8443/", "http://127.0.0.1:9000"); err != nil {
		t.Fatal(err)
	}
	if got := csp(); !strings.HasSuffix(got, "form-action 'self' https://mcr.svc.test https://wiki.example:8443 http://127.0.0.1:9000") {
		t.Errorf("CSP with SSO origins %q", got)
	}
	for _, bad := range []string{"mcr.svc.test", "https://x/cb", "https://x?a=b", "javascript:alert(1)", "https://x; script-src *", "ftp://x"} {
		if err := r.AllowFormActions(bad); err == nil {
			t.Errorf("AllowFormActions(%q) accepted", bad)
		}
	}
}
