package webui_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/totp"
)

func TestLoginForm(t *testing.T) {
	e := start(t)
	b := e.browser(t)

	page := b.get("/login?next=" + url.QueryEscape("//evil.example"))
	if page.StatusCode != http.StatusOK || !strings.Contains(page.body, `name="password"`) {
		t.Fatalf("GET /login = %d:\n%s", page.StatusCode, page.body)
	}
	if !strings.Contains(page.body, `name="next" value=""`) {
		t.Fatal("the login form carries an unsafe next")
	}
	if got := page.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") {
		t.Fatalf("CSP %q", got)
	}
	if !strings.Contains(page.body, `name="viewport"`) || !strings.Contains(page.body, `id="passkey-login"`) {
		t.Fatal("the login page lacks the viewport meta or the passkey button")
	}

	bad := b.submit("/login", url.Values{"username": {adminUser}, "password": {"wrong-password-1"}})
	if bad.StatusCode != http.StatusUnauthorized || !strings.Contains(bad.body, "Wrong username, password or code.") {
		t.Fatalf("bad password = %d:\n%s", bad.StatusCode, bad.body)
	}
	if b.cookie(auth.DefaultCookieName) != nil {
		t.Fatal("a failed login set the session cookie")
	}

	for _, tc := range []struct{ next, want string }{
		{"/admin/keys", "/admin/keys"},
		{"/sso/authorize?client_id=x&state=y", "/sso/authorize?client_id=x&state=y"},
		{"//evil.example", "/account"},
		{"/\\evil.example", "/account"},
		{"https://evil.example/", "/account"},
		{"/\t/evil.example", "/account"},
		{"", "/account"},
	} {
		c := e.browser(t)
		resp := c.submit("/login", url.Values{"username": {adminUser}, "password": {adminPassword}, "next": {tc.next}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
			t.Errorf("login with next=%q: %d Location %q, want %q", tc.next, resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
		sess := c.cookie(auth.DefaultCookieName)
		if sess == nil || sess.Value == "" {
			t.Fatalf("next=%q: no session cookie after login", tc.next)
		}
		// The jar only keeps what the server set; check the attributes on
		// the wire.
		var raw string
		for _, h := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(h, auth.DefaultCookieName+"=") {
				raw = h
			}
		}
		for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(raw, attr) {
				t.Fatalf("session cookie %q lacks %s", raw, attr)
			}
		}
	}

	// Signed in, /login goes straight on, and / goes to the account page.
	b.login(adminUser, adminPassword)
	if r := b.get("/login?next=%2Fadmin%2Fkeys"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/admin/keys" {
		t.Fatalf("GET /login while signed in = %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := b.get("/"); r.Header.Get("Location") != "/account" {
		t.Fatalf("GET / while signed in goes to %q", r.Header.Get("Location"))
	}
	// Logging out revokes the token and clears the cookie.
	tok := b.cookie(auth.DefaultCookieName).Value
	if r := b.submit("/logout", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("logout = %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if b.cookie(auth.DefaultCookieName) != nil {
		t.Fatal("the session cookie survived logout")
	}
	var v struct {
		Valid bool `json:"valid"`
	}
	b.api(http.MethodPost, "/v1/token/validate", "", map[string]string{"token": tok}, http.StatusOK, &v)
	if v.Valid {
		t.Fatal("the session token is still valid after logout")
	}
	if r := b.get("/"); r.Header.Get("Location") != "/login" {
		t.Fatalf("GET / signed out goes to %q", r.Header.Get("Location"))
	}
	if r := b.get("/account"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next=%2Faccount" {
		t.Fatalf("GET /account signed out = %d %q", r.StatusCode, r.Header.Get("Location"))
	}
}

var secretRe = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)
var codeRe = regexp.MustCompile(`<li><code>([^<]+)</code></li>`)

func TestTOTPEnrolmentAndLoginStep(t *testing.T) {
	e := start(t)
	b := e.browser(t)
	admin := b.token(adminUser, adminPassword)
	b.createUser(admin, "alice")
	b.login("alice", userPassword)

	enrol := b.submit("/account/totp/enroll", nil)
	m := secretRe.FindStringSubmatch(enrol.body)
	if enrol.StatusCode != http.StatusOK || m == nil || !strings.Contains(enrol.body, `href="otpauth://totp/`) {
		t.Fatalf("enrol = %d:\n%s", enrol.StatusCode, enrol.body)
	}
	secret := m[1]
	if r := b.submit("/account/totp/confirm", url.Values{"code": {"000000"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm with a wrong code = %d", r.StatusCode)
	}
	if page := b.get("/account"); !strings.Contains(page.body, "does not match") {
		t.Fatalf("the wrong code's error is not shown:\n%s", page.body)
	}
	code, err := totp.Code(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	confirm := b.submit("/account/totp/confirm", url.Values{"code": {code}})
	codes := codeRe.FindAllStringSubmatch(confirm.body, -1)
	if confirm.StatusCode != http.StatusOK || len(codes) != 10 {
		t.Fatalf("confirm = %d with %d recovery codes:\n%s", confirm.StatusCode, len(codes), confirm.body)
	}

	// A new browser: the password alone brings back the form with the
	// code field; the code completes the login.
	c := e.browser(t)
	step := c.submit("/login", url.Values{"username": {"alice"}, "password": {userPassword}, "next": {"/account"}})
	if step.StatusCode != http.StatusOK || !strings.Contains(step.body, `name="totp_code"`) {
		t.Fatalf("password step = %d:\n%s", step.StatusCode, step.body)
	}
	if c.cookie(auth.DefaultCookieName) != nil {
		t.Fatal("session cookie set before the second factor")
	}
	// The confirm used the current step; the next one is accepted (±1).
	next, err := totp.Code(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	wrong := c.submit("/login", url.Values{"username": {"alice"}, "password": {userPassword}, "totp_code": {"123"}})
	if wrong.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code = %d", wrong.StatusCode)
	}
	done := c.submit("/login", url.Values{"username": {"alice"}, "password": {userPassword}, "totp_code": {next}})
	if done.StatusCode != http.StatusSeeOther || c.cookie(auth.DefaultCookieName) == nil {
		t.Fatalf("login with the code = %d:\n%s", done.StatusCode, done.body)
	}

	// Turning TOTP off needs a code: a recovery code does it.
	if r := c.submit("/account/totp/disable", url.Values{"code": {codes[0][1]}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable = %d", r.StatusCode)
	}
	if page := c.get("/account"); !strings.Contains(page.body, "Two-factor is off.") {
		t.Fatalf("after disabling:\n%s", page.body)
	}
}

func TestCSRFRejected(t *testing.T) {
	e := start(t)
	b := e.browser(t)
	b.csrf() // the browser holds a valid CSRF cookie
	if r := b.post("/login", url.Values{"username": {adminUser}, "password": {adminPassword}}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("login without the CSRF token = %d, want 403", r.StatusCode)
	}
	if b.cookie(auth.DefaultCookieName) != nil {
		t.Fatal("a login without CSRF token set the session")
	}
	b.login(adminUser, adminPassword)
	for _, path := range []string{"/account/password", "/logout", "/admin/keys/rotate"} {
		r := b.post(path, url.Values{"csrf_token": {"forged.token"}})
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s with a forged token = %d, want 403", path, r.StatusCode)
		}
	}
	// A token from another browser (its own cookie) does not pass either.
	other := e.browser(t)
	if r := b.post("/admin/keys/rotate", url.Values{"csrf_token": {other.csrf()}}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("another browser's token = %d, want 403", r.StatusCode)
	}
	// The passkey API needs the header when the session cookie is what
	// authenticates.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.origin+"/v1/webauthn/register/begin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.do(req); r.StatusCode != http.StatusForbidden {
		t.Fatalf("register/begin by cookie without CSRF = %d, want 403", r.StatusCode)
	}
}

func TestAdminPagesForAdminsOnly(t *testing.T) {
	e := start(t)
	b := e.browser(t)
	admin := b.token(adminUser, adminPassword)
	b.createUser(admin, "bob")
	b.login("bob", userPassword)
	for _, path := range []string{"/admin/accounts", "/admin/policies", "/admin/keys"} {
		r := b.get(path)
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "for administrators") {
			t.Errorf("GET %s as a user = %d", path, r.StatusCode)
		}
	}
	if r := b.submit("/admin/keys/rotate", nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST /admin/keys/rotate as a user = %d", r.StatusCode)
	}
	if page := b.get("/account"); strings.Contains(page.body, `href="/admin/accounts"`) {
		t.Error("a user's pages link to the admin pages")
	}
}

func TestAdminActions(t *testing.T) {
	e := start(t)
	b := e.browser(t)
	b.login(adminUser, adminPassword)

	if r := b.submit("/admin/accounts", url.Values{"username": {"svc-a"}, "account_type": {"system"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create = %d", r.StatusCode)
	}
	r := b.submit("/admin/accounts", url.Values{"username": {"carol"}, "account_type": {"human"}, "password": {"short"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create with a bad password = %d", r.StatusCode)
	}
	list := b.get("/admin/accounts")
	if !strings.Contains(list.body, "Password must be at least 12 characters") || !strings.Contains(list.body, "svc-a") {
		t.Fatalf("accounts page after two creates:\n%s", list.body)
	}

	admin := b.token(adminUser, adminPassword)
	var accounts struct {
		Accounts []struct{ ID, Username string }
	}
	b.api(http.MethodGet, "/v1/accounts", admin, nil, http.StatusOK, &accounts)
	ids := map[string]string{}
	for _, a := range accounts.Accounts {
		ids[a.Username] = a.ID
	}

	// The system token is on the page once, and it is valid.
	tokPage := b.submit("/admin/accounts/"+ids["svc-a"]+"/token", url.Values{"ttl": {"24h"}})
	m := regexp.MustCompile(`<textarea class="token"[^>]*>([^<]+)</textarea>`).FindStringSubmatch(tokPage.body)
	if tokPage.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("issue token = %d:\n%s", tokPage.StatusCode, tokPage.body)
	}
	var v struct {
		Valid    bool   `json:"valid"`
		Username string `json:"username"`
	}
	b.api(http.MethodPost, "/v1/token/validate", "", map[string]string{"token": m[1]}, http.StatusOK, &v)
	if !v.Valid || v.Username != "svc-a" {
		t.Fatalf("issued token validates as %+v", v)
	}

	// The last admin cannot disable itself; the error is a message.
	b.submit("/admin/accounts/"+ids[adminUser]+"/status", url.Values{"status": {"disabled"}})
	if page := b.get("/admin/accounts"); !strings.Contains(page.body, "last active admin") {
		t.Fatalf("last-admin guard not shown:\n%s", page.body)
	}

	// Policies and keys.
	b.submit("/admin/policies", url.Values{"priority": {"5"}, "effect": {"deny"}, "service_names": {"mcp, mcr"}, "description": {"test rule"}})
	pol := b.get("/admin/policies")
	if !strings.Contains(pol.body, "test rule") || !strings.Contains(pol.body, "mcp, mcr") {
		t.Fatalf("policy not listed:\n%s", pol.body)
	}
	keys := b.get("/admin/keys")
	before := strings.Count(keys.body, "<tr><td><code>")
	b.submit("/admin/keys/rotate", nil)
	if after := strings.Count(b.get("/admin/keys").body, "<tr><td><code>"); after != before+1 {
		t.Fatalf("keys listed before/after rotation: %d/%d", before, after)
	}

	// Delete needs the confirmation box.
	b.submit("/admin/accounts/"+ids["svc-a"]+"/delete", nil)
	if page := b.get("/admin/accounts"); !strings.Contains(page.body, "svc-a") {
		t.Fatal("deleted without confirmation")
	}
	b.submit("/admin/accounts/"+ids["svc-a"]+"/delete", url.Values{"confirm": {"yes"}})
	if page := b.get("/admin/accounts"); strings.Contains(page.body, "svc-a") {
		t.Fatal("account still listed after deletion")
	}
}

func TestChangePassword(t *testing.T) {
	e := start(t)
	b := e.browser(t)
	admin := b.token(adminUser, adminPassword)
	b.createUser(admin, "dave")
	b.login("dave", userPassword)
	other := e.browser(t) // dave signed in elsewhere (or a thief with his password)
	other.login("dave", userPassword)
	b.submit("/account/password", url.Values{"current_password": {userPassword}, "new_password": {"a-new-password-1"}, "confirm_password": {"another-one-234"}})
	if page := b.get("/account"); !strings.Contains(page.body, "do not match") {
		t.Fatal("mismatched confirmation not reported")
	}
	b.submit("/account/password", url.Values{"current_password": {userPassword}, "new_password": {"a-new-password-1"}, "confirm_password": {"a-new-password-1"}})
	// The change revoked every session of dave's; this browser's cookie
	// now holds the fresh token the change answered with, the other one
	// is signed out.
	if page := b.get("/account"); !strings.Contains(page.body, "Your password is changed.") {
		t.Fatalf("after change:\n%s", page.body)
	}
	if r := other.get("/account"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Fatalf("the other session after the change: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	e.browser(t).login("dave", "a-new-password-1")
}

func TestStaticAssets(t *testing.T) {
	e := start(t)
	b := e.browser(t)
	for path, ctype := range map[string]string{"/static/passkey.js": "text/javascript", "/static/style.css": "text/css"} {
		r := b.get(path)
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s = %d %q", path, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
	if r := b.get("/static/"); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /static/ = %d, want 404 (no listing)", r.StatusCode)
	}
	// No inline script anywhere: the CSP forbids it.
	for _, path := range []string{"/login"} {
		if body := b.get(path).body; regexp.MustCompile(`<script>|<script [^>]*>[^<]`).MatchString(body) || strings.Contains(body, " style=") {
			t.Errorf("%s has inline script or style", path)
		}
	}
}
