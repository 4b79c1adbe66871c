package tester

import (
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/auth/authtest"
	"git.metacircular.net/metacircular/mcdsl/config"
)

// The real MCIAS, with TOTP and throttling, is exercised by test/e2e; this
// uses mcdsl's stand-in to test the page itself.

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func (b *browser) get() string {
	b.t.Helper()
	resp, err := b.c.Get(b.base + "/")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET / = %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// post submits the form with the CSRF token from a fresh GET (unless
// csrfToken is "-": none).
func (b *browser) post(fields url.Values, csrfToken string) (int, string) {
	b.t.Helper()
	if csrfToken == "" {
		m := csrfRe.FindStringSubmatch(b.get())
		if m == nil {
			b.t.Fatal("no CSRF token in the page")
		}
		csrfToken = m[1]
	}
	if csrfToken != "-" {
		fields.Set("csrf_token", csrfToken)
	}
	resp, err := b.c.PostForm(b.base+"/", fields)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func outcomeIn(body string) string {
	m := regexp.MustCompile(`data-outcome="([a-z_]+)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestPage(t *testing.T) {
	mcias := authtest.New(t)
	mcias.AddUser(authtest.User{Username: "alice", Password: "alice-password", Roles: []string{"user", "guest"}, DenyServices: []string{"blocked"}})
	tst, err := New(config.MCIAS{ServerURL: mcias.URL, CACert: mcias.CAFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(tst, Form{ServiceName: "default-svc", Tags: "env:test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	b := &browser{t: t, c: c, base: srv.URL}

	page := b.get()
	for _, want := range []string{`value="default-svc"`, `value="env:test"`, `name="password" type="password"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("form lacks %s:\n%s", want, page)
		}
	}

	fields := func(user, pw, svc, tags string) url.Values {
		return url.Values{"username": {user}, "password": {pw}, "service_name": {svc}, "tags": {tags}}
	}
	if code, _ := b.post(fields("alice", "alice-password", "web", ""), "-"); code != http.StatusForbidden {
		t.Fatalf("post without CSRF token = %d; want 403", code)
	}
	if code, _ := b.post(fields("alice", "alice-password", "web", ""), "forged.token"); code != http.StatusForbidden {
		t.Fatalf("post with a forged CSRF token = %d; want 403", code)
	}

	code, body := b.post(fields("alice", "alice-password", "web", " env:prod , team:ops ,"), "")
	if code != http.StatusOK || outcomeIn(body) != "allowed" {
		t.Fatalf("good login = %d outcome %q\n%s", code, outcomeIn(body), body)
	}
	for _, want := range []string{"<dd>alice</dd>", "<dd>user, guest</dd>", "<dd>human</dd>", "UTC</dd>"} {
		if !strings.Contains(body, want) {
			t.Errorf("allowed page lacks %q", want)
		}
	}
	if strings.Contains(body, "alice-password") || strings.Contains(body, "tok-") {
		t.Fatal("the page shows the password or a token")
	}
	logins := mcias.Logins()
	last := logins[len(logins)-1]
	if last.ServiceName != "web" || !slices.Equal(last.Tags, []string{"env:prod", "team:ops"}) {
		t.Fatalf("MCIAS saw service_name %q tags %q; want the form's", last.ServiceName, last.Tags)
	}

	if _, body := b.post(fields("alice", "alice-password", "blocked", ""), ""); outcomeIn(body) != "denied" {
		t.Fatalf("denied service: outcome %q", outcomeIn(body))
	}
	if _, body := b.post(fields("alice", "wrong-password", "web", ""), ""); outcomeIn(body) != "bad_credentials" {
		t.Fatalf("wrong password: outcome %q", outcomeIn(body))
	}
	code, body = b.post(fields("alice", "alice-password", "Bad Name", ""), "")
	if code != http.StatusUnprocessableEntity || outcomeIn(body) != "invalid" || !strings.Contains(body, `value="Bad Name"`) {
		t.Fatalf("invalid service name = %d outcome %q", code, outcomeIn(body))
	}
	if code, body := b.post(fields("alice", "alice-password", "web", "bad tag!"), ""); code != http.StatusUnprocessableEntity || outcomeIn(body) != "invalid" {
		t.Fatalf("invalid tag = %d outcome %q", code, outcomeIn(body))
	}
	if code, body := b.post(fields("", "alice-password", "web", ""), ""); code != http.StatusUnprocessableEntity || outcomeIn(body) != "invalid" {
		t.Fatalf("no username = %d outcome %q", code, outcomeIn(body))
	}

}

func TestPageMCIASDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String()
	_ = ln.Close()
	tst, err := New(config.MCIAS{ServerURL: dead}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(tst, Form{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	b := &browser{t: t, c: c, base: srv.URL}
	code, body := b.post(url.Values{"username": {"alice"}, "password": {"alice-password"}}, "")
	if code != http.StatusOK || outcomeIn(body) != "unavailable" || !strings.Contains(body, "MCIAS unavailable") {
		t.Fatalf("MCIAS down = %d outcome %q", code, outcomeIn(body))
	}
}

func TestSplitTags(t *testing.T) {
	for in, want := range map[string][]string{
		"":              nil,
		" , ,":          nil,
		"a":             {"a"},
		" a ,b,, c:d ,": {"a", "b", "c:d"},
	} {
		if got := splitTags(in); !slices.Equal(got, want) {
			t.Errorf("splitTags(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	write := func(mcias string) string {
		p := filepath.Join(t.TempDir(), "mcat.toml")
		body := "[server]\nlisten_addr = \"127.0.0.1:0\"\ntls_cert = \"c\"\ntls_key = \"k\"\n[mcias]\n" + mcias
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadConfig(write("server_url = \"https://mcias.example:8443\"\nservice_name = \"mcat\"\ntags = [\"env:prod\"]\n"))
	if err != nil || DefaultsFrom(*cfg) != (Form{ServiceName: "mcat", Tags: "env:prod"}) {
		t.Fatalf("LoadConfig = %+v, %v", cfg, err)
	}
	if _, err := LoadConfig("../../deploy/examples/mcat.toml"); err != nil {
		t.Fatalf("example config: %v", err)
	}
	for name, body := range map[string]string{
		"no server_url":   "ca_cert = \"x\"\n",
		"http server_url": "server_url = \"http://mcias.example\"\n",
		"bad default":     "server_url = \"https://mcias.example\"\nservice_name = \"Bad Name\"\n",
		"unknown key":     "server_url = \"https://mcias.example\"\npassword = \"x\"\n",
	} {
		if _, err := LoadConfig(write(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
