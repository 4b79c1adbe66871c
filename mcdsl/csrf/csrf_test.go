package csrf

import (
	"bytes"
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
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie attributes: %+v", c)
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
	forged := otherProtector(t).sign(bytes.Repeat([]byte("n"), 32))
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
