package csrf

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func setup(t *testing.T) (*httptest.Server, *http.Client) {
	t.Helper()
	p, err := New(bytes.Repeat([]byte("k"), 32), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, Token(r)) })
	mux.HandleFunc("POST /form", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "accepted") })
	ts := httptest.NewTLSServer(p.Middleware(mux))
	t.Cleanup(ts.Close)
	client := ts.Client()
	jar, _ := cookiejar.New(nil)
	client.Jar = jar
	return ts, client
}

func TestCookieAttributes(t *testing.T) {
	ts, client := setup(t)
	resp, err := client.Get(ts.URL + "/form")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	var c *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == DefaultCookieName {
			c = ck
		}
	}
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" ||
		!strings.HasPrefix(c.Name, "__Host-") {
		t.Fatalf("cookie attributes: %+v", c)
	}
}

// TestTokenBoundToSession: a token minted before login (or for another
// session) is refused once the session cookie is there, and the next page
// gets a fresh one.
func TestTokenBoundToSession(t *testing.T) {
	ts, client := setup(t)
	u, _ := url.Parse(ts.URL)
	fetch := func() string {
		resp, err := client.Get(ts.URL + "/form")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	post := func(tok string) int {
		resp, err := client.PostForm(ts.URL+"/form", url.Values{DefaultFieldName: {tok}})
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	anon := fetch()
	if post(anon) != 200 {
		t.Fatal("anonymous token refused before login")
	}
	// Log in as the admin: the session cookie appears.
	client.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-mc_session", Value: "admin-session", Path: "/"}})
	if got := post(anon); got != 403 {
		t.Fatalf("a token minted before login was accepted with the admin's session: %d", got)
	}
	fresh := fetch()
	if fresh == anon || post(fresh) != 200 {
		t.Fatalf("the page after login did not rotate the token (%q → %q)", anon, fresh)
	}
	// Another session (another user's cookie) does not take this token.
	client.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-mc_session", Value: "bob-session", Path: "/"}})
	if got := post(fresh); got != 403 {
		t.Fatalf("a token bound to the admin's session worked with bob's: %d", got)
	}
}

func TestMutatingRequestsNeedToken(t *testing.T) {
	ts, client := setup(t)
	resp, err := client.Get(ts.URL + "/form")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()

	post := func(c *http.Client, form url.Values, header string, browser map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/form", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if header != "" {
			req.Header.Set(DefaultHeaderName, header)
		}
		for k, v := range browser {
			req.Header.Set(k, v)
		}
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = r.Body.Close()
		return r.StatusCode
	}
	forged := otherProtector(t).sign(bytes.Repeat([]byte("n"), 32), sha256.Sum256(nil))
	good := url.Values{DefaultFieldName: {string(tok)}}
	host := strings.TrimPrefix(ts.URL, "https://")
	for _, tc := range []struct {
		name    string
		client  *http.Client
		form    url.Values
		header  string
		browser map[string]string
		want    int
	}{
		{"form token", client, good, "", nil, 200},
		{"header token", client, nil, string(tok), nil, 200},
		{"no token", client, nil, "", nil, 403},
		{"wrong token", client, url.Values{DefaultFieldName: {"abc.def"}}, "", nil, 403},
		{"token signed by another key", client, url.Values{DefaultFieldName: {forged}}, "", nil, 403},
		{"no cookie", &http.Client{Transport: ts.Client().Transport}, good, "", nil, 403},
		// A browser tells where a request comes from; another origin is
		// refused even with a valid token and cookie.
		{"same origin", client, good, "", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": ts.URL}, 200},
		{"cross site", client, good, "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same site, other origin", client, good, "", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"foreign Origin, no Sec-Fetch-Site", client, good, "", map[string]string{"Origin": "https://evil.example"}, 403},
		{"own Origin, no Sec-Fetch-Site", client, good, "", map[string]string{"Origin": "https://" + host}, 200},
	} {
		if got := post(tc.client, tc.form, tc.header, tc.browser); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
}

// otherProtector builds a Protector with a different key.
func otherProtector(t *testing.T) *Protector {
	t.Helper()
	p, err := New(bytes.Repeat([]byte("x"), 32), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShortKeyRefused(t *testing.T) {
	if _, err := New([]byte("short"), Options{}); err == nil {
		t.Fatal("short key accepted")
	}
}
