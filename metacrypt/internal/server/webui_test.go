package server_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/metacrypt/client"
	"git.metacircular.net/metacircular/metacrypt/internal/webui"
)

// webClient is a browser without JavaScript: a cookie jar, no redirects
// followed, TLS verified against the test CA.
type webClient struct {
	t    *testing.T
	base *url.URL
	jar  *cookiejar.Jar
	hc   *http.Client
}

// web is a web client signed in as caller (a session cookie holding the
// caller's MCIAS token, as the SSO callback would set it), or signed out
// for "".
func (h *harness) web(t *testing.T, caller string) *webClient {
	t.Helper()
	base, err := url.Parse(h.rest)
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &webClient{t: t, base: base, jar: jar, hc: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: tlsConfig()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	t.Cleanup(c.hc.CloseIdleConnections)
	if caller != "" {
		jar.SetCookies(base, []*http.Cookie{{Name: webui.SessionCookie, Value: env.tokens[caller], Path: "/", Secure: true, HttpOnly: true}})
	}
	return c
}

type webResp struct {
	status int
	header http.Header
	body   string
}

func (c *webClient) do(method, path string, form url.Values, header http.Header) webResp {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base.String()+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return webResp{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (c *webClient) get(path string) webResp {
	c.t.Helper()
	return c.do(http.MethodGet, path, nil, nil)
}

func (c *webClient) post(path string, form url.Values) webResp {
	c.t.Helper()
	return c.do(http.MethodPost, path, form, nil)
}

var (
	csrfField   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	formIDField = regexp.MustCompile(`name="form_id" value="([^"]+)"`)
)

// field is the value of a hidden field of page.
func field(t *testing.T, re *regexp.Regexp, page webResp) string {
	t.Helper()
	m := re.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no %s on the page (%d):\n%s", re, page.status, tail(page.body, 2000))
	}
	return html.UnescapeString(m[1])
}

// csrf loads path and returns its form's CSRF token, or, for a page
// without a form, the token of the CSRF cookie it set (the same value).
func (c *webClient) csrf(path string) string {
	c.t.Helper()
	r := c.get(path)
	if csrfField.MatchString(r.body) {
		return field(c.t, csrfField, r)
	}
	for _, ck := range c.jar.Cookies(c.base) {
		if ck.Name == webui.CSRFCookie {
			return ck.Value
		}
	}
	c.t.Fatalf("%s set no CSRF cookie", path)
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// wantPage checks a UI answer: status, the security headers every page
// carries, no script or inline style, and the texts.
func wantPage(t *testing.T, what string, r webResp, status int, texts ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d, want %d\n%s", what, r.status, status, tail(r.body, 3000))
	}
	for k, v := range map[string]string{
		"Content-Type": "text/html; charset=utf-8", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
		"Cache-Control": "no-store",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s: %s %q, want %q", what, k, got, v)
		}
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("%s: CSP %q", what, csp)
	}
	low := strings.ToLower(r.body)
	if strings.Contains(low, "<script") || strings.Contains(low, " style=") || strings.Contains(low, "<style") || strings.Contains(low, "javascript:") {
		t.Errorf("%s: the page has a script or an inline style", what)
	}
	for _, s := range texts {
		if !strings.Contains(r.body, s) {
			t.Errorf("%s: page lacks %q\n%s", what, s, tail(r.body, 3000))
		}
	}
}

// startUI runs a ready Metacrypt with the web UI on (the SSO redirect URI
// is not used: these tests set the session cookie themselves).
func startUI(t *testing.T) *harness {
	t.Helper()
	h := startWith(t, "", webTOML("127.0.0.1:1"))
	h.ready(t, false)
	return h
}

func (h *harness) certCount(t *testing.T) int {
	t.Helper()
	l, err := h.client(t, admin).Certificates(t.Context(), "pki", client.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

func (h *harness) ruleCount(t *testing.T) int {
	t.Helper()
	l, err := h.client(t, admin).Rules(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

// TestWebUIRoutesDoNotShadowTheAPI: with the UI on, every /v1 path answers
// as before (REST, its JSON 404, the public CA endpoints, ACME, a POST
// without a token), and paths the UI does not know are the same JSON 404.
func TestWebUIRoutesDoNotShadowTheAPI(t *testing.T) {
	h := startUI(t)
	c := h.web(t, admin) // a session cookie must not change what /v1 answers
	for _, tc := range []struct {
		method, path string
		status       int
		ctype, text  string
	}{
		{"GET", "/v1/nope", 404, "application/json", `"no such endpoint"`},
		{"GET", "/v1", 404, "application/json", `"no such endpoint"`},
		{"GET", "/v1/pki/pki/nope/deeper", 404, "application/json", `"no such endpoint"`},
		{"GET", "/nope", 404, "application/json", `"no such endpoint"`},
		{"GET", "/mounts/pki/nope", 404, "application/json", `"no such endpoint"`},
		{"POST", "/nope", 404, "application/json", `"no such endpoint"`},
		{"GET", "/v1/sys/status", 200, "application/json", `"sealed"`},
		{"GET", "/v1/health", 200, "application/json", "ok"},
		{"GET", "/v1/pki/pki/ca", 200, "application/x-pem-file", "BEGIN CERTIFICATE"},
		{"GET", "/v1/pki/pki/crl/services/pem", 200, "application/x-pem-file", "BEGIN X509 CRL"},
		{"GET", "/v1/pki/pki/acme/services/directory", 200, "application/json", "newAccount"},
		// No bearer token: the API's 401, not the UI's CSRF 403 (the
		// session cookie is not a credential of the API).
		{"POST", "/v1/sys/seal", 401, "application/json", "error"},
		{"GET", "/v1/pki/pki/certs", 401, "application/json", "error"},
		{"PUT", "/v1/pki/pki/ca", 405, "application/json", "method not allowed"},
		{"GET", "/", 200, "text/html; charset=utf-8", "Metacrypt"},
		{"GET", "/static/style.css", 200, "text/css; charset=utf-8", "--accent"},
	} {
		r := c.do(tc.method, tc.path, url.Values{}, nil)
		if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), tc.ctype) || !strings.Contains(r.body, tc.text) {
			t.Errorf("%s %s: %d %s %q, want %d %s with %q", tc.method, tc.path, r.status, r.header.Get("Content-Type"), tail(r.body, 200), tc.status, tc.ctype, tc.text)
		}
	}
	st, err := h.client(t, admin).Status(t.Context())
	if err != nil || st.Sealed {
		t.Fatalf("after the POSTs: %+v %v", st, err)
	}
}

// TestWebUICSRF: a POST without the token, with a forged one, with one
// minted for another session or from another origin is 403 and changes
// nothing; the same form with its token works.
func TestWebUICSRF(t *testing.T) {
	h := startUI(t)
	c := h.web(t, admin)
	tok := c.csrf("/policy")
	other := h.web(t, alice).csrf("/")
	rule := func(token string) url.Values {
		v := url.Values{"priority": {"50"}, "effect": {"allow"}, "roles": {"guest"}, "operations": {"read"}, "description": {"csrf test"}}
		if token != "" {
			v.Set("csrf_token", token)
		}
		return v
	}
	rules := h.ruleCount(t)
	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"no token", rule(""), nil},
		{"forged token", rule(strings.Repeat("A", 43) + "." + strings.Repeat("B", 43)), nil},
		{"token of another session", rule(other), nil},
		{"token in the form, another in the header", rule(tok), http.Header{"X-Csrf-Token": {other}}},
		{"cross-site", rule(tok), http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"other origin", rule(tok), http.Header{"Origin": {"https://evil.example"}}},
	} {
		r := c.do(http.MethodPost, "/policy/rules", tc.form, tc.header)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403\n%s", tc.name, r.status, tail(r.body, 500))
		}
	}
	// Another session's cookie and token together (planted by a
	// neighbour, say): bound to that session, so worthless with this one.
	planted := h.web(t, admin)
	planted.jar.SetCookies(planted.base, []*http.Cookie{{Name: webui.CSRFCookie, Value: other, Path: "/", Secure: true}})
	if r := planted.post("/policy/rules", rule(other)); r.status != http.StatusForbidden {
		t.Errorf("planted cookie and token: %d, want 403", r.status)
	}
	if r := c.post("/seal", url.Values{}); r.status != http.StatusForbidden {
		t.Errorf("seal without a token: %d", r.status)
	}
	if r := c.post("/unseal", url.Values{"password": {unsealPassword}}); r.status != http.StatusForbidden {
		t.Errorf("unseal without a token: %d", r.status)
	}
	if n := h.ruleCount(t); n != rules {
		t.Fatalf("rules %d → %d after refused posts", rules, n)
	}
	if st, err := h.client(t, admin).Status(t.Context()); err != nil || st.Sealed {
		t.Fatalf("status after refused seal: %+v %v", st, err)
	}
	// The form's own token: added, then redirected (POST-redirect-GET).
	r := c.post("/policy/rules", rule(tok))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/policy" {
		t.Fatalf("add rule with the token: %d %s\n%s", r.status, r.header.Get("Location"), tail(r.body, 1000))
	}
	if n := h.ruleCount(t); n != rules+1 {
		t.Fatalf("rules %d → %d after the good post", rules, n)
	}
	wantPage(t, "policy after the add", c.get("/policy"), http.StatusOK, "Rule added.", "csrf test")
}

// TestWebUISignedOut: without a session, pages ask to sign in, POSTs
// (with a valid pre-login CSRF token) redirect and change nothing, and a
// dead session cookie is cleared.
func TestWebUISignedOut(t *testing.T) {
	h := startUI(t)
	c := h.web(t, "")
	tok := c.csrf("/")
	wantPage(t, "signed-out status", c.get("/"), http.StatusOK, `id="seal-state"`, "unsealed", `href="/login"`)
	wantPage(t, "signed-out certificates", c.get("/mounts/pki/certs"), http.StatusOK, "Sign in with MCIAS")
	if r := c.get("/mounts/pki/certs"); strings.Contains(r.body, `id="certs"`) {
		t.Fatal("the certificate list shows signed out")
	}
	certs, rules := h.certCount(t), h.ruleCount(t)
	for path, form := range map[string]url.Values{
		"/mounts/pki/issue":      {"issuer": {"services"}, "dns_names": {svcName("signedout")}, "form_id": {"x"}},
		"/policy/rules":          {"priority": {"1"}, "effect": {"allow"}, "operations": {"*"}},
		"/policy/rules/1/delete": {},
		"/seal":                  {},
		"/mounts/pki/eab":        {},
	} {
		form.Set("csrf_token", tok)
		r := c.post(path, form)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
			t.Errorf("signed-out POST %s: %d %s", path, r.status, r.header.Get("Location"))
		}
	}
	if c2, r2 := h.certCount(t), h.ruleCount(t); c2 != certs || r2 != rules {
		t.Fatalf("signed-out posts changed something: certs %d → %d, rules %d → %d", certs, c2, rules, r2)
	}
	if st, err := h.client(t, admin).Status(t.Context()); err != nil || st.Sealed {
		t.Fatalf("signed-out seal: %+v %v", st, err)
	}
	wantPage(t, "after the redirect", c.get("/"), http.StatusOK, "Sign in first: nothing was changed.")

	// A session whose token MCIAS does not know: cleared, signed out.
	bad := h.web(t, "")
	bad.jar.SetCookies(bad.base, []*http.Cookie{{Name: webui.SessionCookie, Value: "not-a-token", Path: "/", Secure: true}})
	r := bad.get("/mounts/pki/certs")
	wantPage(t, "bad session", r, http.StatusOK, "Sign in with MCIAS")
	if !strings.Contains(strings.Join(r.header.Values("Set-Cookie"), "\n"), webui.SessionCookie+"=;") {
		t.Fatalf("bad session cookie not cleared: %q", r.header.Values("Set-Cookie"))
	}
}

// TestWebUIPolicyAdminOnly: PolicyService is admin-only, so the policy
// page and its forms are refused to anyone else by the API, and nothing
// of the policy shows.
func TestWebUIPolicyAdminOnly(t *testing.T) {
	h := startUI(t)
	rules := h.ruleCount(t)
	for _, who := range []string{alice, gina, agent} {
		c := h.web(t, who)
		home := c.get("/")
		wantPage(t, who+" home", home, http.StatusOK, `id="whoami">`+who+"<")
		if strings.Contains(home.body, `href="/policy"`) {
			t.Errorf("%s sees the policy link", who)
		}
		r := c.get("/policy")
		wantPage(t, who+" policy", r, http.StatusForbidden, "403 Forbidden")
		if strings.Contains(r.body, `id="rules"`) || strings.Contains(r.body, "svc."+domain) || strings.Contains(r.body, `id="add-rule"`) {
			t.Errorf("%s sees the rules", who)
		}
		tok := c.csrf("/")
		for path, form := range map[string]url.Values{
			"/policy/rules":          {"priority": {"1"}, "effect": {"allow"}, "accounts": {who}, "operations": {"*"}},
			"/policy/limits":         {"priority": {"1"}, "effect": {"allow"}, "accounts": {who}, "names": {"**.example.org"}},
			"/policy/rules/1/delete": {},
		} {
			form.Set("csrf_token", tok)
			if r := c.post(path, form); r.status != http.StatusForbidden {
				t.Errorf("%s POST %s: %d, want 403", who, path, r.status)
			}
		}
		if r := c.post("/seal", url.Values{"csrf_token": {tok}}); r.status != http.StatusForbidden || !strings.Contains(r.body, "403 Forbidden") {
			t.Errorf("%s seal: %d", who, r.status)
		}
	}
	if n := h.ruleCount(t); n != rules {
		t.Fatalf("rules %d → %d", rules, n)
	}
	l, err := h.client(t, admin).Limits(t.Context())
	if err != nil || len(l) != 3 {
		t.Fatalf("limits %d %v", len(l), err)
	}
	if st, err := h.client(t, admin).Status(t.Context()); err != nil || st.Sealed {
		t.Fatalf("status: %+v %v", st, err)
	}
	// The admin sees and changes both tables.
	c := h.web(t, admin)
	wantPage(t, "admin policy", c.get("/policy"), http.StatusOK, `id="rules"`, `id="limits"`, "mcp-agent", "*.svc."+domain)
	tok := c.csrf("/policy")
	r := c.post("/policy/limits", url.Values{"csrf_token": {tok}, "priority": {"30"}, "effect": {"allow"}, "accounts": {alice},
		"names": {"*.web." + domain}, "description": {"alice web"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("add limit: %d\n%s", r.status, tail(r.body, 1000))
	}
	r = c.post("/policy/limits", url.Values{"csrf_token": {tok}, "priority": {"x"}, "effect": {"allow"}})
	wantPage(t, "bad priority", r, http.StatusBadRequest, "priority")
	r = c.post("/policy/rules", url.Values{"csrf_token": {tok}, "priority": {"1"}, "effect": {"maybe"}, "operations": {"read"}})
	wantPage(t, "bad effect", r, http.StatusBadRequest, "400 Bad Request", "effect", `id="add-rule"`)
	limits, err := h.client(t, admin).Limits(t.Context())
	if err != nil || len(limits) != 4 {
		t.Fatalf("limits after the add: %d %v", len(limits), err)
	}
	for _, l := range limits {
		if l.Description == "alice web" {
			if r := c.post("/policy/limits/"+strconv.FormatInt(l.ID, 10)+"/delete", url.Values{"csrf_token": {tok}}); r.status != http.StatusSeeOther {
				t.Fatalf("delete limit: %d", r.status)
			}
		}
	}
	if l, _ := h.client(t, admin).Limits(t.Context()); len(l) != 3 {
		t.Fatalf("limits after the delete: %d", len(l))
	}
}

// TestWebUIIssueShowsKeyOnce: the issue answer carries the key, never
// cached; the same form posted again issues nothing; refusals show the
// API's status and message naming the name; revocation obeys the limits.
func TestWebUIIssueShowsKeyOnce(t *testing.T) {
	h := startUI(t)
	ag := h.web(t, agent) // a system account's token works as a session too
	form := ag.get("/mounts/pki/issue")
	wantPage(t, "issue form", form, http.StatusOK, `id="issue"`, `name="issuer"`)
	tok, id := field(t, csrfField, form), field(t, formIDField, form)
	before := h.certCount(t)
	issue := url.Values{"csrf_token": {tok}, "form_id": {id}, "issuer": {"services"}, "dns_names": {svcName("web1")},
		"ip_addresses": {"10.1.2.3"}, "key_type": {"ec-p384"}, "profile": {"server"}, "ttl": {"7d"}}
	r := ag.post("/mounts/pki/issue", issue)
	wantPage(t, "issued", r, http.StatusOK, "BEGIN PRIVATE KEY", "BEGIN CERTIFICATE", `download="`, "only time")
	m := regexp.MustCompile(`id="download-key" href="data:application/x-pem-file;base64,([^"]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatal("no key download link")
	}
	keyPEM, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("downloaded key %q", keyPEM)
	}
	serial := field(t, regexp.MustCompile(`<code id="serial">([0-9a-f]+)</code>`), r)
	if h.certCount(t) != before+1 {
		t.Fatal("no certificate recorded")
	}
	// Posted again (a reload, a double click): nothing more is issued.
	again := ag.post("/mounts/pki/issue", issue)
	wantPage(t, "reposted", again, http.StatusConflict, "409 Conflict", "sent already")
	if strings.Contains(again.body, "PRIVATE KEY") || h.certCount(t) != before+1 {
		t.Fatal("the reposted form issued again")
	}
	// Refusals: the API's status and message, the form kept, no record.
	for _, tc := range []struct {
		who, name string
		status    int
		text      string
	}{
		{agent, "www.example.net", http.StatusForbidden, "www.example.net"},
		{agent, "a.b.svc." + domain, http.StatusForbidden, "a.b.svc." + domain},
		{agent, "bad_name.svc." + domain, http.StatusBadRequest, "dns_names"},
		{alice, svcName("alice"), http.StatusForbidden, "403 Forbidden"},
	} {
		c := h.web(t, tc.who)
		f := c.get("/mounts/pki/issue")
		r := c.post("/mounts/pki/issue", url.Values{"csrf_token": {field(t, csrfField, f)}, "form_id": {field(t, formIDField, f)},
			"issuer": {"services"}, "dns_names": {tc.name}})
		wantPage(t, tc.who+" issuing "+tc.name, r, tc.status, tc.text, `id="issue"`, html.EscapeString(tc.name))
		if strings.Contains(r.body, "PRIVATE KEY") {
			t.Fatalf("%s: a key on a refusal", tc.name)
		}
	}
	if h.certCount(t) != before+1 {
		t.Fatal("a refused request was recorded")
	}
	// Revocation: the agent may not revoke what it could not have had
	// issued; it may revoke its own.
	adm, err := h.client(t, admin).Issue(t.Context(), "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{"www.example.net"}})
	if err != nil {
		t.Fatal(err)
	}
	page := ag.get("/mounts/pki/certs/" + adm.Certificate.Serial)
	wantPage(t, "foreign certificate", page, http.StatusOK, `id="revoke"`)
	r = ag.post("/mounts/pki/certs/"+adm.Certificate.Serial+"/revoke", url.Values{"csrf_token": {tok}, "reason": {"superseded"}})
	wantPage(t, "revoke foreign", r, http.StatusForbidden, "403 Forbidden", "www.example.net")
	if c, _ := h.client(t, admin).Certificate(t.Context(), "pki", adm.Certificate.Serial); c.Revoked {
		t.Fatal("revoked against the limits")
	}
	r = ag.post("/mounts/pki/certs/"+serial+"/revoke", url.Values{"csrf_token": {tok}, "reason": {"key-compromise"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/mounts/pki/certs/"+serial {
		t.Fatalf("revoke own: %d %s\n%s", r.status, r.header.Get("Location"), tail(r.body, 1000))
	}
	wantPage(t, "revoked", ag.get("/mounts/pki/certs/"+serial), http.StatusOK, "Certificate revoked", "key-compromise")
	if c, _ := h.client(t, admin).Certificate(t.Context(), "pki", serial); !c.Revoked || c.RevocationReason != "key-compromise" {
		t.Fatalf("after the UI revoke: %+v", c)
	}
}

// TestWebUICertificateSearch: search by serial and by name, filters and
// paging.
func TestWebUICertificateSearch(t *testing.T) {
	h := startUI(t)
	adm := h.client(t, admin)
	var first string
	for i := range 55 {
		is, err := adm.Issue(t.Context(), "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("n" + strconv.Itoa(i))}, TTL: time.Duration(i+1) * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = is.Certificate.Serial
		}
	}
	// The issuers' own certificates are listed too.
	total := h.certCount(t)
	rows := regexp.MustCompile(`<tr><td><a href="/mounts/pki/certs/[0-9a-f]+"`)
	c := h.web(t, alice) // reads
	p0 := c.get("/mounts/pki/certs")
	wantPage(t, "page 1", p0, http.StatusOK, `id="next"`)
	if n := len(rows.FindAllString(p0.body, -1)); n != 50 || strings.Contains(p0.body, `id="prev"`) {
		t.Fatalf("page 1: %d rows", n)
	}
	p1 := c.get("/mounts/pki/certs?page=1")
	if n := len(rows.FindAllString(p1.body, -1)); n != total-50 || strings.Contains(p1.body, `id="next"`) || !strings.Contains(p1.body, `id="prev"`) {
		t.Fatalf("page 2: %d rows", n)
	}
	// By serial, with colons and upper case as people paste them.
	var colons []string
	for i := 0; i < len(first); i += 2 {
		colons = append(colons, strings.ToUpper(first[i:min(i+2, len(first))]))
	}
	r := c.get("/mounts/pki/certs?q=" + url.QueryEscape(strings.Join(colons, ":")))
	if n := len(rows.FindAllString(r.body, -1)); n != 1 || !strings.Contains(r.body, first) {
		t.Fatalf("by serial %s: %d rows\n%s", first, n, tail(r.body, 2000))
	}
	r = c.get("/mounts/pki/certs?q=" + svcName("n7"))
	if n := len(rows.FindAllString(r.body, -1)); n != 1 || !strings.Contains(r.body, svcName("n7")) {
		t.Fatalf("by name: %d rows", n)
	}
	r = c.get("/mounts/pki/certs?q=bad_name")
	wantPage(t, "bad name", r, http.StatusBadRequest, "400 Bad Request", "name")
	r = c.get("/mounts/pki/certs?status=revoked")
	if n := len(rows.FindAllString(r.body, -1)); n != 0 {
		t.Fatalf("revoked: %d rows", n)
	}
	// gina may not read: the API's 403.
	wantPage(t, "guest list", h.web(t, gina).get("/mounts/pki/certs"), http.StatusForbidden, "403 Forbidden")
}

// TestWebUISealedAndEAB: pages that need the barrier show the unseal form
// while sealed (503), unseal works signed out through the form, wrong
// passwords show the API's answer, the return address stays on the site;
// EAB credentials are shown once, uncached, and revocable.
func TestWebUISealedAndEAB(t *testing.T) {
	h := startUI(t)
	if _, err := h.client(t, admin).Seal(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := h.web(t, alice)
	r := c.get("/mounts/pki/certs?status=valid")
	wantPage(t, "sealed list", r, http.StatusServiceUnavailable, `id="sealed"`, `id="unseal"`, `name="next" value="/mounts/pki/certs?status=valid"`)
	wantPage(t, "sealed home", c.get("/"), http.StatusOK, "sealed", `id="unseal"`)
	if strings.Contains(c.get("/").body, `id="seal"`) {
		t.Fatal("a non-admin sees the seal button")
	}
	out := h.web(t, "")
	tok := out.csrf("/")
	r = out.post("/unseal", url.Values{"csrf_token": {tok}, "password": {"not the password at all"}, "next": {"/mounts/pki/certs"}})
	wantPage(t, "wrong password", r, http.StatusForbidden, "403 Forbidden", `name="next" value="/mounts/pki/certs"`)
	r = out.post("/unseal", url.Values{"csrf_token": {tok}, "password": {unsealPassword}, "next": {"//evil.example/x"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("unseal: %d %q", r.status, r.header.Get("Location"))
	}
	if st, err := h.client(t, admin).Status(t.Context()); err != nil || st.Sealed {
		t.Fatalf("after the UI unseal: %+v %v", st, err)
	}
	wantPage(t, "unsealed list", c.get("/mounts/pki/certs"), http.StatusOK, `id="certs"`)

	// EAB credentials for alice herself.
	page := c.get("/mounts/pki/eab")
	wantPage(t, "eab page", page, http.StatusOK, `id="create-eab"`)
	if strings.Contains(page.body, `name="account"`) {
		t.Fatal("a non-admin is offered to bind credentials to another account")
	}
	form := url.Values{"csrf_token": {field(t, csrfField, page)}, "form_id": {field(t, formIDField, page)}, "ttl": {"1h"}}
	r = c.post("/mounts/pki/eab", form)
	wantPage(t, "eab created", r, http.StatusOK, `id="eab-hmac"`, "/v1/pki/pki/acme/services/directory", "only now")
	kid := field(t, regexp.MustCompile(`<code id="eab-kid">([^<]+)</code>`), r)
	if again := c.post("/mounts/pki/eab", form); again.status != http.StatusConflict || strings.Contains(again.body, `id="eab-hmac"`) {
		t.Fatalf("reposted EAB form: %d", again.status)
	}
	// Binding to another account is the admins': the API refuses alice.
	page = c.get("/mounts/pki/eab")
	r = c.post("/mounts/pki/eab", url.Values{"csrf_token": {field(t, csrfField, page)}, "form_id": {field(t, formIDField, page)}, "account": {agent}})
	wantPage(t, "eab for another", r, http.StatusForbidden, "403 Forbidden")
	eabs, err := h.client(t, alice).EABs(t.Context(), "pki", "")
	if err != nil || len(eabs) != 1 || eabs[0].KID != kid || eabs[0].Account != alice {
		t.Fatalf("alice's EABs: %+v %v", eabs, err)
	}
	if r := c.get("/mounts/pki/eab"); strings.Contains(r.body, `id="eab-hmac"`) || !strings.Contains(r.body, kid) {
		t.Fatal("the list shows a key, or not the credentials")
	}
	r = c.post("/mounts/pki/eab/"+kid+"/revoke", url.Values{"csrf_token": {field(t, csrfField, page)}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("revoke EAB: %d\n%s", r.status, tail(r.body, 1000))
	}
	if eabs, _ := h.client(t, alice).EABs(t.Context(), "pki", ""); len(eabs) != 1 || eabs[0].Status != "revoked" {
		t.Fatalf("after the revoke: %+v", eabs)
	}

	// The admin seals through the form.
	a := h.web(t, admin)
	home := a.get("/")
	wantPage(t, "admin home", home, http.StatusOK, `id="seal"`, `id="mounts"`, `href="/mounts/pki"`)
	if r := a.post("/seal", url.Values{"csrf_token": {field(t, csrfField, home)}}); r.status != http.StatusSeeOther {
		t.Fatalf("seal: %d", r.status)
	}
	if st, _ := h.client(t, admin).Status(t.Context()); !st.Sealed {
		t.Fatal("not sealed by the form")
	}
}

// parseCRL fetches an issuer's CRL from the public endpoint.
func parseCRL(t *testing.T, h *harness, issuer string) *x509.RevocationList {
	t.Helper()
	resp, err := httpClient().Get(h.pki + "/v1/pki/pki/crl/" + issuer)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	der, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	return crl
}
