package server_test

import (
	"bytes"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/client"
)

// startEnginesUI runs a Metacrypt with the web UI on, initialized (so
// unsealed), with a mount of each type the UI has pages for, named after
// its type (pki for the CA), and the given ACL rules.
func startEnginesUI(t *testing.T, rules ...client.Rule) *harness {
	t.Helper()
	ctx := t.Context()
	h := startWith(t, "", webTOML("127.0.0.1:1"))
	ad := h.client(t, admin)
	if _, err := ad.Init(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	for _, m := range [][2]string{{"pki", "ca"}, {"ssh", "ssh"}, {"transit", "transit"}, {"u2u", "u2u"}} {
		if _, err := ad.CreateMount(ctx, m[0], m[1]); err != nil {
			t.Fatalf("mount %s: %v", m[0], err)
		}
	}
	for _, r := range rules {
		if _, err := ad.CreateRule(ctx, r); err != nil {
			t.Fatalf("rule %+v: %v", r, err)
		}
	}
	return h
}

// serialField is the serial of a signed SSH certificate's page.
var serialField = regexp.MustCompile(`<code id="serial">([0-9]+)</code>`)

// form is a form with its CSRF token and name/value pairs.
func form(token string, kv ...string) url.Values {
	v := url.Values{"csrf_token": {token}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// pre is the text of the page's <pre id="id">, unescaped.
func pre(t *testing.T, r webResp, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<pre id="` + regexp.QuoteMeta(id) + `">(.*?)</pre>`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no <pre id=%q> on the page (%d):\n%s", id, r.status, tail(r.body, 3000))
	}
	return html.UnescapeString(m[1])
}

// hasID reports whether the page has an element with id.
func hasID(r webResp, id string) bool { return strings.Contains(r.body, `id="`+id+`"`) }

// wantText checks the page's text, unescaped, holds each of texts (for
// texts html/template escapes: keys with '+', quoted names).
func wantText(t *testing.T, what string, r webResp, texts ...string) {
	t.Helper()
	body := html.UnescapeString(r.body)
	for _, s := range texts {
		if !strings.Contains(body, s) {
			t.Errorf("%s: page lacks %q\n%s", what, s, tail(body, 3000))
		}
	}
}

// wantRedirect checks a POST answered 303 to location.
func wantRedirect(t *testing.T, what string, r webResp, location string) {
	t.Helper()
	if r.status != http.StatusSeeOther || r.header.Get("Location") != location {
		t.Fatalf("%s: %d to %q, want 303 to %q\n%s", what, r.status, r.header.Get("Location"), location, tail(r.body, 2000))
	}
}

// refusedCSRF posts form to path without its token, and with it from
// another site and another origin: each must be 403.
func refusedCSRF(t *testing.T, c *webClient, path string, f url.Values) {
	t.Helper()
	bare := url.Values{}
	for k, v := range f {
		if k != "csrf_token" {
			bare[k] = v
		}
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"no token", bare, nil},
		{"cross-site", f, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"other origin", f, http.Header{"Origin": {"https://evil.example"}}},
	} {
		if r := c.do(http.MethodPost, path, tc.form, tc.header); r.status != http.StatusForbidden {
			t.Errorf("POST %s, %s: %d, want 403\n%s", path, tc.name, r.status, tail(r.body, 500))
		}
	}
}

// sealedPages seals h and checks each path answers the sealed page with
// the unseal form (GET) or changes nothing and shows it (POST forms).
func sealedPages(t *testing.T, h *harness, c *webClient, gets []string, posts map[string]url.Values) {
	t.Helper()
	tok := c.csrf("/")
	if _, err := h.client(t, admin).Seal(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, path := range gets {
		r := c.get(path)
		wantPage(t, "sealed "+path, r, http.StatusServiceUnavailable, `id="sealed"`, `id="unseal"`, `name="next" value="`+path+`"`)
	}
	for path, f := range posts {
		f.Set("csrf_token", tok)
		wantPage(t, "sealed POST "+path, c.post(path, f), http.StatusServiceUnavailable, `id="sealed"`, `id="unseal"`)
	}
}

// TestWebUISSHPages: the SSH CA pages through the API as each user: the
// CA generated from the form (after refusals: no CSRF token, a guest, a
// weak key type; a second one refused), its key and trust lines shown
// and matching the public endpoint; profiles created, refused, edited and
// deleted; a user certificate signed for alice from a pasted key
// (principal, TTL, options checked on the parsed certificate) and the
// form refusing a repost, another principal, a bad key and a long TTL; a
// host certificate; the list with its filters, the API's denial for who
// may not list; revocation by serial (refused to bob), by key and the
// API's 400 for an ambiguous request; sealed and signed-out answers.
func TestWebUISSHPages(t *testing.T) {
	ctx := t.Context()
	users(t, bob)
	h := startEnginesUI(t, rule([]string{alice, bob}, "ssh", []string{"sign", "revoke"}, "profile/users"))
	ad := h.client(t, admin)
	a := h.web(t, admin)

	page := a.get("/ssh/ssh")
	wantPage(t, "no CA", page, http.StatusOK, `id="generate-ca"`, "no CA key yet", `href="/ssh/ssh/profiles"`, `href="/ssh/ssh/certs"`)
	if strings.Contains(page.body, `href="/mounts/ssh/issue"`) {
		t.Error("an SSH mount's page shows the CA engine's tabs")
	}
	tok := field(t, csrfField, page)
	refusedCSRF(t, a, "/ssh/ssh/ca", form(tok, "key_type", "ed25519"))
	g := h.web(t, gina)
	r := g.post("/ssh/ssh/ca", form(g.csrf("/ssh/ssh"), "key_type", "ed25519"))
	wantPage(t, "guest generates", r, http.StatusForbidden, "403 Forbidden", "gina may not manage ca")
	r = a.post("/ssh/ssh/ca", form(tok, "key_type", "rsa-2048"))
	wantPage(t, "weak CA key", r, http.StatusBadRequest, "400 Bad Request", "key_type", `id="generate-ca"`)
	if _, err := ad.SSHCA(ctx, "ssh"); client.KindOf(err) != apierr.Precondition {
		t.Fatalf("a CA after refused generates: %v", err)
	}

	wantRedirect(t, "generate", a.post("/ssh/ssh/ca", form(tok, "key_type", "ec-p384")), "/ssh/ssh")
	ca, err := ad.SSHCA(ctx, "ssh")
	if err != nil || ca.KeyType != "ec-p384" || !strings.HasPrefix(ca.PublicKey, "ecdsa-sha2-nistp384 ") {
		t.Fatalf("CA after the form: %+v %v", ca, err)
	}
	line := strings.TrimSpace(ca.PublicKey)
	page = a.get("/ssh/ssh")
	wantPage(t, "CA page", page, http.StatusOK, "TrustedUserCAKeys /etc/ssh/metacrypt_user_ca.pub", "RevokedKeys /etc/ssh/revoked.krl",
		`href="`+h.rest+`/v1/ssh/ssh/ca"`, `href="`+h.rest+`/v1/ssh/ssh/krl"`, "version 1")
	wantText(t, "CA page", page, "SSH CA key generated: "+ca.Fingerprint+".", ca.Fingerprint)
	if got := pre(t, page, "ca-key"); got != line {
		t.Fatalf("CA key on the page %q, want %q", got, line)
	}
	if got := pre(t, page, "known-hosts"); !strings.HasPrefix(got, "@cert-authority ") || !strings.HasSuffix(got, " "+line) {
		t.Fatalf("known_hosts line %q", got)
	}
	if code, _, body := request(t, h.rest, http.MethodGet, "/v1/ssh/ssh/ca", "", "", nil); code != http.StatusOK || string(body) != ca.PublicKey {
		t.Fatalf("the public CA endpoint the page links: %d %q", code, body)
	}
	r = a.post("/ssh/ssh/ca", form(tok, "key_type", "ed25519"))
	wantPage(t, "second CA", r, http.StatusConflict, "409 Conflict", `id="ca-key"`)
	if again, _ := ad.SSHCA(ctx, "ssh"); again.Fingerprint != ca.Fingerprint {
		t.Fatal("the CA key changed")
	}

	// Profiles.
	profile := []string{"name", "users", "cert_type", "user", "allowed_principals", "{{username}}", "default_principals", "{{username}}",
		"max_ttl", "16h", "default_ttl", "8h", "default_extensions", "permit-pty, permit-agent-forwarding",
		"critical_options", "source-address=10.0.0.0/8\r\n"}
	refusedCSRF(t, a, "/ssh/ssh/profiles", form(tok, profile...))
	wantRedirect(t, "create profile", a.post("/ssh/ssh/profiles", form(tok, profile...)), "/ssh/ssh/profiles")
	wantRedirect(t, "create host profile", a.post("/ssh/ssh/profiles", form(tok, "name", "hosts", "cert_type", "host",
		"allowed_principals", "*.example.net")), "/ssh/ssh/profiles")
	pr, err := ad.SSHProfile(ctx, "ssh", "users")
	if err != nil || pr.CertType != "user" || !slices.Equal(pr.AllowedPrincipals, []string{"{{username}}"}) || pr.MaxTTL != "16h0m0s" ||
		!slices.Equal(slices.Sorted(slices.Values(pr.DefaultExtensions)), []string{"permit-agent-forwarding", "permit-pty"}) ||
		pr.CriticalOptions["source-address"] != "10.0.0.0/8" {
		t.Fatalf("profile from the form: %+v %v", pr, err)
	}
	for _, tc := range []struct {
		name   string
		kv     []string
		status int
		text   string
	}{
		{"option without a value", []string{"name", "bad", "cert_type", "user", "critical_options", "source-address"}, http.StatusBadRequest, "critical_options"},
		{"RSA bits not a number", []string{"name", "bad", "cert_type", "user", "min_rsa_bits", "lots"}, http.StatusBadRequest, "min_rsa_bits"},
		{"unknown type", []string{"name", "bad", "cert_type", "both"}, http.StatusBadRequest, "cert_type"},
		{"existing name", []string{"name", "users", "cert_type", "user", "allowed_principals", "*"}, http.StatusConflict, "exists"},
	} {
		r := a.post("/ssh/ssh/profiles", form(tok, tc.kv...))
		wantPage(t, "profile: "+tc.name, r, tc.status, tc.text, `id="profile-form"`, `value="`+tc.kv[1]+`"`)
	}
	if l, _ := ad.SSHProfiles(ctx, "ssh"); len(l) != 2 {
		t.Fatalf("profiles after the refusals: %d", len(l))
	}
	edit := a.get("/ssh/ssh/profiles?edit=users")
	wantPage(t, "edit form", edit, http.StatusOK, `action="/ssh/ssh/profiles/users"`, `value="16h0m0s"`, `id="profile-name">users<`)
	wantText(t, "edit form", edit, `value="{{username}}"`, "source-address=10.0.0.0/8</textarea>")
	upd := slices.Clone(profile[2:])
	upd[7], upd[9] = "12h", "4h"
	wantRedirect(t, "update profile", a.post("/ssh/ssh/profiles/users", form(tok, upd...)), "/ssh/ssh/profiles")
	if pr, err := ad.SSHProfile(ctx, "ssh", "users"); err != nil || pr.MaxTTL != "12h0m0s" || pr.DefaultTTL != "4h0m0s" || pr.CriticalOptions["source-address"] != "10.0.0.0/8" {
		t.Fatalf("profile after the update: %+v %v", pr, err)
	}
	if _, err := ad.CreateSSHProfile(ctx, "ssh", client.SSHProfileRequest{Name: "tmp", CertType: "user", AllowedPrincipals: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	wantRedirect(t, "delete profile", a.post("/ssh/ssh/profiles/tmp/delete", form(tok)), "/ssh/ssh/profiles")
	if _, err := ad.SSHProfile(ctx, "ssh", "tmp"); client.KindOf(err) != apierr.NotFound {
		t.Fatalf("deleted profile: %v", err)
	}
	wantPage(t, "profiles", a.get("/ssh/ssh/profiles"), http.StatusOK, "Profile tmp deleted.", `id="profiles"`, "hosts")

	// alice signs her own key; she may sign but not list profiles.
	al := h.web(t, alice)
	wantPage(t, "alice's profiles", al.get("/ssh/ssh/profiles"), http.StatusOK, `id="list-denied"`, "alice may not read profiles")
	signPage := al.get("/ssh/ssh/sign")
	wantPage(t, "sign form", signPage, http.StatusOK, `id="sign"`, `<input name="profile"`)
	atok := field(t, csrfField, signPage)
	_, pub := sshKey(t)
	sign := form(atok, "form_id", field(t, formIDField, signPage), "profile", "users", "public_key", pub, "ttl", "30m")
	refusedCSRF(t, al, "/ssh/ssh/sign", sign)
	r = al.post("/ssh/ssh/sign", sign)
	wantPage(t, "signed", r, http.StatusOK, `download="id_ed25519-cert.pub"`, `id="download-cert" href="data:text/plain;base64,`)
	certText := pre(t, r, "certificate")
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(certText))
	if err != nil {
		t.Fatalf("certificate on the page %q: %v", certText, err)
	}
	caKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(ca.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := parsed.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.UserCert || !slices.Equal(cert.ValidPrincipals, []string{alice}) || cert.KeyId != alice ||
		!bytes.Equal(cert.SignatureKey.Marshal(), caKey.Marshal()) || cert.CriticalOptions["source-address"] != "10.0.0.0/8" {
		t.Fatalf("alice's certificate: %+v", parsed)
	}
	if left := time.Until(time.Unix(int64(cert.ValidBefore), 0)); left < 29*time.Minute || left > 31*time.Minute { //nolint:gosec // a test's certificate
		t.Fatalf("certificate valid for %s more, want 30m", left)
	}
	serial := strconv.FormatUint(cert.Serial, 10)
	if got := field(t, serialField, r); got != serial {
		t.Fatalf("serial on the page %s, in the certificate %s", got, serial)
	}
	count := func() int {
		t.Helper()
		l, err := ad.SSHCertificates(ctx, "ssh", client.SSHFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	again := al.post("/ssh/ssh/sign", sign)
	wantPage(t, "reposted", again, http.StatusConflict, "409 Conflict", "sent already", `id="sign"`)
	if strings.Contains(again.body, "-cert-v01@openssh.com") || count() != 1 {
		t.Fatal("the reposted form signed again")
	}
	for _, tc := range []struct {
		name, who, key, principals, ttl string
		status                          int
		text                            string
	}{
		{"another principal", alice, pub, bob, "", http.StatusForbidden, "principals[0]"},
		{"a bad key", alice, "ssh-ed25519 AAAAnotakey", "", "", http.StatusBadRequest, "public_key"},
		{"a TTL over the maximum", alice, pub, "", "13h", http.StatusBadRequest, "max_ttl"},
		{"a guest", gina, pub, "", "", http.StatusForbidden, "gina may not sign profile/users"},
	} {
		c := h.web(t, tc.who)
		f := c.get("/ssh/ssh/sign")
		r := c.post("/ssh/ssh/sign", form(field(t, csrfField, f), "form_id", field(t, formIDField, f), "profile", "users",
			"public_key", tc.key, "principals", tc.principals, "ttl", tc.ttl))
		wantPage(t, "sign: "+tc.name, r, tc.status, `id="sign"`)
		wantText(t, "sign: "+tc.name, r, tc.text, strings.TrimSpace(tc.key)+"</textarea>")
		if strings.Contains(r.body, `id="certificate"`) {
			t.Fatalf("sign: %s: a certificate on a refusal", tc.name)
		}
	}
	if count() != 1 {
		t.Fatal("a refused signature was recorded")
	}

	// The admin signs a host certificate.
	hostPage := a.get("/ssh/ssh/sign?profile=hosts")
	wantPage(t, "admin sign form", hostPage, http.StatusOK, `<option value="hosts" selected>hosts (host)</option>`)
	_, hostPub := sshKey(t)
	r = a.post("/ssh/ssh/sign", form(tok, "form_id", field(t, formIDField, hostPage), "profile", "hosts", "public_key", hostPub, "principals", "web1.example.net"))
	wantPage(t, "host certificate", r, http.StatusOK, "web1.example.net")
	hc, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pre(t, r, "certificate")))
	if c, ok := hc.(*ssh.Certificate); err != nil || !ok || c.CertType != ssh.HostCert || !slices.Equal(c.ValidPrincipals, []string{"web1.example.net"}) {
		t.Fatalf("host certificate: %+v %v", hc, err)
	}
	hostSerial := field(t, serialField, r)

	// The list: both, filtered, a bad filter; alice may not list.
	list := a.get("/ssh/ssh/certs")
	wantPage(t, "list", list, http.StatusOK, `href="/ssh/ssh/certs/`+serial+`"`, `href="/ssh/ssh/certs/`+hostSerial+`"`, `id="revoke-key"`)
	r = a.get("/ssh/ssh/certs?requested_by=" + alice)
	if !strings.Contains(r.body, `/ssh/ssh/certs/`+serial+`"`) || strings.Contains(r.body, `/ssh/ssh/certs/`+hostSerial+`"`) {
		t.Fatalf("filtered by requester:\n%s", tail(r.body, 2000))
	}
	wantPage(t, "bad filter", a.get("/ssh/ssh/certs?status=bogus"), http.StatusBadRequest, "400 Bad Request", "status")
	wantPage(t, "alice's list", al.get("/ssh/ssh/certs"), http.StatusOK, `id="list-denied"`, "alice may not read certs", `id="revoke-key"`)

	// Revocation by serial: bob may not (the principal is not his), the
	// admin may; the record, the KRL and the page say so.
	b := h.web(t, bob)
	r = b.post("/ssh/ssh/certs/"+serial+"/revoke", form(b.csrf("/ssh/ssh")))
	wantPage(t, "bob revokes alice's", r, http.StatusForbidden, "403 Forbidden")
	wantText(t, "bob revokes alice's", r, `principal "alice" of certificate `+serial+` is not bob's`)
	refusedCSRF(t, a, "/ssh/ssh/certs/"+serial+"/revoke", form(tok))
	if c, _ := ad.SSHCertificate(ctx, "ssh", cert.Serial); c.Revoked {
		t.Fatal("revoked by a refused request")
	}
	wantRedirect(t, "revoke", a.post("/ssh/ssh/certs/"+serial+"/revoke", form(tok)), "/ssh/ssh/certs/"+serial)
	wantPage(t, "revoked", a.get("/ssh/ssh/certs/"+serial), http.StatusOK, "Certificate "+serial+" revoked; the KRL is now version 2.", `class="status-revoked">revoked`)
	if c, _ := ad.SSHCertificate(ctx, "ssh", cert.Serial); !c.Revoked {
		t.Fatal("not revoked by the form")
	}
	r = a.post("/ssh/ssh/certs/"+serial+"/revoke", form(tok))
	wantPage(t, "revoked twice", r, http.StatusConflict, "409 Conflict", `id="cert"`)

	// Revocation by key: alice's second key and its certificate.
	_, pub2 := sshKey(t)
	s2, err := h.client(t, alice).SignSSH(ctx, "ssh", client.SSHSignRequest{Profile: "users", PublicKey: pub2})
	if err != nil {
		t.Fatal(err)
	}
	r = a.post("/ssh/ssh/revoke", form(tok, "public_key", pub2, "key_id", alice))
	wantPage(t, "revoke by two things", r, http.StatusBadRequest, "exactly one", `id="revoke-key"`)
	wantText(t, "revoke by two things", r, strings.TrimSpace(pub2)+"</textarea>")
	r = g.post("/ssh/ssh/revoke", form(g.csrf("/ssh/ssh"), "public_key", pub2))
	wantPage(t, "guest revokes by key", r, http.StatusForbidden, "gina may not revoke krl")
	refusedCSRF(t, a, "/ssh/ssh/revoke", form(tok, "public_key", pub2))
	if c, _ := ad.SSHCertificate(ctx, "ssh", s2.Record.Serial); c.Revoked {
		t.Fatal("revoked by a refused request")
	}
	wantRedirect(t, "revoke by key", a.post("/ssh/ssh/revoke", form(tok, "public_key", pub2)), "/ssh/ssh/certs?status=revoked")
	r = a.get("/ssh/ssh/certs?status=revoked")
	wantPage(t, "after the revocation by key", r, http.StatusOK, "KRL (now version 3), with the certificates "+strconv.FormatUint(s2.Record.Serial, 10))
	if c, _ := ad.SSHCertificate(ctx, "ssh", s2.Record.Serial); !c.Revoked {
		t.Fatal("not revoked by key")
	}
	if k, err := ad.SSHKRL(ctx, "ssh"); err != nil || k.Version != 3 {
		t.Fatalf("KRL: %+v %v", k, err)
	}
	wantPage(t, "the CA page's KRL", a.get("/ssh/ssh"), http.StatusOK, "version 3")

	// Signed out: nothing is done.
	out := h.web(t, "")
	otok := out.csrf("/")
	for path, f := range map[string]url.Values{"/ssh/ssh/revoke": {"key_id": {alice}}, "/ssh/ssh/profiles": {"name": {"x"}, "cert_type": {"user"}}} {
		f.Set("csrf_token", otok)
		wantRedirect(t, "signed-out "+path, out.post(path, f), "/")
	}
	if l, _ := ad.SSHProfiles(ctx, "ssh"); len(l) != 2 {
		t.Fatal("a signed-out POST made a profile")
	}

	sealedPages(t, h, a, []string{"/ssh/ssh", "/ssh/ssh/certs?status=valid", "/ssh/ssh/sign"},
		map[string]url.Values{"/ssh/ssh/ca": {"key_type": {"ed25519"}}})
}

// TestWebUITransitPages: transit keys through the API as each user: a key
// created from the form (after refusals: no CSRF token, another origin, a
// duplicate, a bad name, a guest); text encrypted with associated data
// and decrypted back (checked against the API both ways), the wrong
// associated data, a mangled ciphertext and bad fields refused with their
// messages; rotation, rewrap, min_decryption_version refusing an old
// ciphertext; binary data as base64; data keys; HMACs and signatures
// with their verifications; deletion only once allowed; a user who may
// only encrypt uses the page without reading the key; sealed answers.
func TestWebUITransitPages(t *testing.T) {
	ctx := t.Context()
	users(t, carol)
	h := startEnginesUI(t,
		rule([]string{alice}, "transit", []string{"manage", "read", "encrypt", "decrypt", "rewrap", "datakey", "sign", "verify", "hmac"}, "key/*", "keys"),
		rule([]string{carol}, "transit", []string{"encrypt"}, "key/orders"))
	ad := h.client(t, admin)
	al := h.web(t, alice)
	page := al.get("/transit/transit")
	wantPage(t, "no keys", page, http.StatusOK, `id="create-key"`, "No keys yet.", `href="/transit/transit"`)
	tok := field(t, csrfField, page)
	create := form(tok, "name", "orders", "type", "aes256-gcm96")
	refusedCSRF(t, al, "/transit/transit/keys", create)
	if l, _ := ad.TransitKeys(ctx, "transit"); len(l) != 0 {
		t.Fatalf("keys after refused creates: %v", l)
	}
	wantRedirect(t, "create", al.post("/transit/transit/keys", create), "/transit/transit/keys/orders")
	if k, err := ad.TransitKey(ctx, "transit", "orders"); err != nil || k.Type != "aes256-gcm96" || k.Exportable || k.LatestVersion != 1 {
		t.Fatalf("key from the form: %+v %v", k, err)
	}
	for _, tc := range []struct {
		who, name, typ string
		status         int
		text           string
	}{
		{alice, "orders", "aes256-gcm96", http.StatusConflict, "exists"},
		{alice, "bad name", "aes256-gcm96", http.StatusBadRequest, "name"},
		{alice, "other", "rsa-2048", http.StatusBadRequest, "type"},
		{gina, "mine", "aes256-gcm96", http.StatusForbidden, "gina may not manage key/mine"},
	} {
		c := h.web(t, tc.who)
		r := c.post("/transit/transit/keys", form(c.csrf("/"), "name", tc.name, "type", tc.typ))
		wantPage(t, "create "+tc.name, r, tc.status, tc.text, `id="create-key"`, `value="`+tc.name+`"`)
	}
	page = al.get("/transit/transit/keys/orders")
	wantPage(t, "key page", page, http.StatusOK, "Key orders created.", `id="key-type">aes256-gcm96<`, `id="latest-version">1<`,
		`id="min-decryption-version">1<`, `id="encrypt"`, `id="decrypt"`, `id="rewrap"`, `id="datakey"`, `id="hmac"`, `id="rotate"`, `id="config"`)
	if hasID(page, "sign") || hasID(page, "delete") {
		t.Fatal("an AES key offers signing, or deletion before it is allowed")
	}
	wantPage(t, "key list", al.get("/transit/transit"), http.StatusOK, `href="/transit/transit/keys/orders"`)

	// Encrypt, then decrypt, through the forms.
	const secret = "attack at dawn"
	enc := form(tok, "plaintext", secret, "encoding", "text", "associated_data", "order-1")
	refusedCSRF(t, al, "/transit/transit/keys/orders/encrypt", enc)
	r := al.post("/transit/transit/keys/orders/encrypt", enc)
	wantPage(t, "encrypted", r, http.StatusOK, "Encrypted with version 1.")
	ct := pre(t, r, "result-ciphertext")
	if !strings.HasPrefix(ct, "metacrypt:v1:") || strings.Contains(r.body, secret) {
		t.Fatalf("encrypt answer: ciphertext %q, plaintext shown again: %v", ct, strings.Contains(r.body, secret))
	}
	if pt, err := ad.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct, AssociatedData: []byte("order-1")}); err != nil || string(pt.Plaintext) != secret {
		t.Fatalf("the page's ciphertext over the API: %q %v", pt.Plaintext, err)
	}
	apiCT, err := ad.Encrypt(ctx, "transit", client.EncryptRequest{Key: "orders", Plaintext: []byte("from the API")})
	if err != nil {
		t.Fatal(err)
	}
	r = al.post("/transit/transit/keys/orders/decrypt", form(tok, "ciphertext", apiCT.Ciphertext))
	wantPage(t, "decrypted", r, http.StatusOK, "Decrypted (version 1).", `id="once"`)
	if got := pre(t, r, "result-plaintext"); got != "from the API" {
		t.Fatalf("decrypted %q", got)
	}
	r = al.post("/transit/transit/keys/orders/decrypt", form(tok, "ciphertext", ct, "associated_data", "order-1"))
	if got := pre(t, r, "result-plaintext"); got != secret {
		t.Fatalf("decrypted %q, want %q", got, secret)
	}
	for _, tc := range []struct {
		name, op string
		kv       []string
		status   int
		text     string
	}{
		{"wrong associated data", "decrypt", []string{"ciphertext", ct, "associated_data", "order-2"}, http.StatusBadRequest, "does not decrypt"},
		{"mangled ciphertext", "decrypt", []string{"ciphertext", ct[:len(ct)-6] + "AAAA=="}, http.StatusBadRequest, "ciphertext"},
		{"not a ciphertext", "decrypt", []string{"ciphertext", "hello"}, http.StatusBadRequest, "ciphertext"},
		{"version not a number", "encrypt", []string{"plaintext", "x", "key_version", "latest"}, http.StatusBadRequest, "key_version"},
		{"no such version", "encrypt", []string{"plaintext", "x", "key_version", "7"}, http.StatusBadRequest, "key_version"},
		{"bad base64", "encrypt", []string{"plaintext", "not base64!", "encoding", "base64"}, http.StatusBadRequest, "plaintext"},
	} {
		r := al.post("/transit/transit/keys/orders/"+tc.op, form(tok, tc.kv...))
		wantPage(t, tc.name, r, tc.status, `id="`+tc.op+`"`)
		wantText(t, tc.name, r, tc.text, tc.kv[1]+"</textarea>")
		if hasID(r, "result") {
			t.Fatalf("%s: a result on a refusal", tc.name)
		}
	}
	// Binary data goes in and comes out as base64.
	r = al.post("/transit/transit/keys/orders/encrypt", form(tok, "plaintext", "/wABAg==", "encoding", "base64"))
	r = al.post("/transit/transit/keys/orders/decrypt", form(tok, "ciphertext", pre(t, r, "result-ciphertext")))
	if got := pre(t, r, "result-plaintext-b64"); got != "/wABAg==" || hasID(r, "result-plaintext") {
		t.Fatalf("binary round trip: %q, as text: %v", got, hasID(r, "result-plaintext"))
	}

	// Rotate, rewrap, retire version 1.
	wantRedirect(t, "rotate", al.post("/transit/transit/keys/orders/rotate", form(tok)), "/transit/transit/keys/orders")
	wantPage(t, "rotated", al.get("/transit/transit/keys/orders"), http.StatusOK, "new requests use version 2", `id="latest-version">2<`)
	r = al.post("/transit/transit/keys/orders/rewrap", form(tok, "ciphertext", ct, "associated_data", "order-1"))
	wantPage(t, "rewrapped", r, http.StatusOK, "Rewrapped to version 2.")
	ct2 := pre(t, r, "result-ciphertext")
	if pt, err := ad.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct2, AssociatedData: []byte("order-1")}); err != nil ||
		!strings.HasPrefix(ct2, "metacrypt:v2:") || string(pt.Plaintext) != secret {
		t.Fatalf("rewrapped %q: %q %v", ct2, pt.Plaintext, err)
	}
	cfg := form(tok, "min_decryption_version", "2", "min_encryption_version", "0")
	refusedCSRF(t, al, "/transit/transit/keys/orders/config", cfg)
	wantRedirect(t, "config", al.post("/transit/transit/keys/orders/config", cfg), "/transit/transit/keys/orders")
	if k, _ := ad.TransitKey(ctx, "transit", "orders"); k.MinDecryptionVersion != 2 || k.DeletionAllowed {
		t.Fatalf("after the config form: %+v", k)
	}
	r = al.post("/transit/transit/keys/orders/decrypt", form(tok, "ciphertext", ct, "associated_data", "order-1"))
	wantPage(t, "retired version", r, http.StatusPreconditionFailed, "412 Precondition Failed", "rewrap before raising it")
	r = al.post("/transit/transit/keys/orders/config", form(tok, "min_decryption_version", "two"))
	wantPage(t, "config not a number", r, http.StatusBadRequest, "min_decryption_version", `value="two"`)
	r = al.post("/transit/transit/keys/orders/config", form(tok, "min_decryption_version", "9"))
	wantPage(t, "config past the latest", r, http.StatusBadRequest, "min_decryption_version")

	// Data keys and HMACs.
	r = al.post("/transit/transit/keys/orders/datakey", form(tok, "bits", "256", "include_plaintext", "on"))
	wantPage(t, "data key", r, http.StatusOK, "wrapped with version 2")
	dk, err := base64.StdEncoding.DecodeString(pre(t, r, "result-plaintext-b64"))
	if err != nil || len(dk) != 32 {
		t.Fatalf("data key %x %v", dk, err)
	}
	if pt, err := ad.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: pre(t, r, "result-ciphertext")}); err != nil || !bytes.Equal(pt.Plaintext, dk) {
		t.Fatalf("wrapped data key: %x %v", pt.Plaintext, err)
	}
	r = al.post("/transit/transit/keys/orders/hmac", form(tok, "input", "payload", "algorithm", "sha2-512"))
	mac := pre(t, r, "result-hmac")
	if want, err := ad.TransitHMAC(ctx, "transit", "orders", []byte("payload"), "sha2-512", 0); err != nil || want.HMAC != mac {
		t.Fatalf("HMAC %q, over the API %+v %v", mac, want, err)
	}
	for input, valid := range map[string]bool{"payload": true, "payloaD": false} {
		r = al.post("/transit/transit/keys/orders/verify-hmac", form(tok, "input", input, "algorithm", "sha2-512", "hmac", mac))
		wantPage(t, "verify HMAC of "+input, r, http.StatusOK, "HMAC checked.", map[bool]string{true: `class="badge good">valid<`, false: `class="badge bad">not valid<`}[valid])
	}

	// A signing key.
	wantRedirect(t, "create signing key", al.post("/transit/transit/keys", form(tok, "name", "signer", "type", "ed25519")), "/transit/transit/keys/signer")
	page = al.get("/transit/transit/keys/signer")
	wantPage(t, "signing key", page, http.StatusOK, `id="sign"`, `id="verify"`, "BEGIN PUBLIC KEY")
	if hasID(page, "encrypt") || hasID(page, "hmac") {
		t.Fatal("an Ed25519 key offers encryption or HMAC")
	}
	r = al.post("/transit/transit/keys/signer/sign", form(tok, "input", "release v1.2"))
	sig := pre(t, r, "result-signature")
	if ok, err := ad.TransitVerify(ctx, "transit", "signer", []byte("release v1.2"), false, sig); err != nil || !ok {
		t.Fatalf("the page's signature over the API: %v %v", ok, err)
	}
	for input, valid := range map[string]bool{"release v1.2": true, "release v1.3": false} {
		r = al.post("/transit/transit/keys/signer/verify", form(tok, "input", input, "signature", sig))
		wantPage(t, "verify "+input, r, http.StatusOK, "Signature checked.", map[bool]string{true: `class="badge good">valid<`, false: `class="badge bad">not valid<`}[valid])
	}
	r = al.post("/transit/transit/keys/signer/encrypt", form(tok, "plaintext", "x"))
	wantPage(t, "encrypt with a signing key", r, http.StatusBadRequest, "400 Bad Request", `id="sign"`)

	// Deletion: refused until allowed.
	r = al.post("/transit/transit/keys/signer/delete", form(tok))
	wantPage(t, "delete unallowed", r, http.StatusPreconditionFailed, "deletion_allowed")
	wantRedirect(t, "allow deletion", al.post("/transit/transit/keys/signer/config", form(tok, "deletion_allowed", "on")), "/transit/transit/keys/signer")
	wantPage(t, "deletable", al.get("/transit/transit/keys/signer"), http.StatusOK, `id="deletion-allowed">yes<`, `id="delete"`)
	refusedCSRF(t, al, "/transit/transit/keys/signer/delete", form(tok))
	wantRedirect(t, "delete", al.post("/transit/transit/keys/signer/delete", form(tok)), "/transit/transit")
	if _, err := ad.TransitKey(ctx, "transit", "signer"); client.KindOf(err) != apierr.NotFound {
		t.Fatalf("deleted key: %v", err)
	}
	wantPage(t, "deleted", al.get("/transit/transit/keys/signer"), http.StatusNotFound, "404 Not Found", "signer")

	// carol may encrypt with orders and nothing else: the page shows the
	// API's denials and still works for what she may do.
	c := h.web(t, carol)
	page = c.get("/transit/transit")
	wantPage(t, "carol's list", page, http.StatusOK, `id="list-denied"`, "carol may not read keys", `id="open-key"`)
	if r := c.get("/transit/transit?key=orders"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/transit/transit/keys/orders" {
		t.Fatalf("open by name: %d %q", r.status, r.header.Get("Location"))
	}
	page = c.get("/transit/transit/keys/orders")
	wantPage(t, "carol's key page", page, http.StatusOK, `id="key-denied"`, "carol may not read key/orders", `id="encrypt"`, `id="decrypt"`)
	if hasID(page, "config") || hasID(page, "rotate") {
		t.Fatal("carol is offered the key's settings")
	}
	ctok := field(t, csrfField, page)
	r = c.post("/transit/transit/keys/orders/encrypt", form(ctok, "plaintext", "carol's order"))
	wantPage(t, "carol encrypts", r, http.StatusOK, "Encrypted with version 2.")
	if pt, err := ad.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: pre(t, r, "result-ciphertext")}); err != nil || string(pt.Plaintext) != "carol's order" {
		t.Fatalf("carol's ciphertext: %q %v", pt.Plaintext, err)
	}
	r = c.post("/transit/transit/keys/orders/decrypt", form(ctok, "ciphertext", ct2, "associated_data", "order-1"))
	wantPage(t, "carol decrypts", r, http.StatusForbidden, "403 Forbidden", "carol may not decrypt key/orders")
	if strings.Contains(r.body, secret) {
		t.Fatal("a refused decryption shows the plaintext")
	}
	g := h.web(t, gina)
	wantPage(t, "gina's list", g.get("/transit/transit"), http.StatusOK, "gina may not read keys")
	r = g.post("/transit/transit/keys/orders/encrypt", form(g.csrf("/"), "plaintext", "x"))
	wantPage(t, "gina encrypts", r, http.StatusForbidden, "gina may not encrypt key/orders")

	sealedPages(t, h, al, []string{"/transit/transit", "/transit/transit/keys/orders"},
		map[string]url.Values{"/transit/transit/keys/orders/encrypt": {"plaintext": {secret}}, "/transit/transit/keys/orders/decrypt": {"ciphertext": {ct2}}})
}

// TestWebUIU2UPages: messages through the API as each user: alice's key
// made from the form (not without the CSRF token), a message sealed for
// bob shown once and opened by bob on his page (sender and text checked,
// and against the API); alice, carol and a changed message or associated
// data refused with the API's messages; a message that is not base64 and
// an unknown recipient; rotation keeps old messages readable; a guest
// sees the denials; sealed answers.
func TestWebUIU2UPages(t *testing.T) {
	ctx := t.Context()
	users(t, bob, carol)
	h := startEnginesUI(t, rule([]string{alice, bob, carol}, "u2u", []string{"manage", "read", "send", "open"}, "user/*", "users"))
	ad := h.client(t, admin)
	al := h.web(t, alice)
	page := al.get("/u2u/u2u")
	wantPage(t, "no key", page, http.StatusOK, `id="create-key"`, "has no u2u key yet", `id="send"`, `id="open"`, `href="/u2u/u2u"`)
	tok := field(t, csrfField, page)
	refusedCSRF(t, al, "/u2u/u2u/keys", form(tok))
	if _, err := ad.U2UKey(ctx, "u2u", alice); client.KindOf(err) != apierr.NotFound {
		t.Fatalf("a key after refused creates: %v", err)
	}
	wantRedirect(t, "create key", al.post("/u2u/u2u/keys", form(tok)), "/u2u/u2u")
	page = al.get("/u2u/u2u")
	wantPage(t, "my key", page, http.StatusOK, "Your key pair is created: version 1.", `id="my-version">1<`, `id="rotate-key"`)
	k, err := ad.U2UKey(ctx, "u2u", alice)
	if err != nil {
		t.Fatal(err)
	}
	wantText(t, "my key", page, base64.StdEncoding.EncodeToString(k.Versions[0].PublicKey))
	r := al.post("/u2u/u2u/keys", form(tok))
	wantPage(t, "a second key", r, http.StatusConflict, "rotate it instead")
	if _, err := h.client(t, bob).CreateU2UKey(ctx, "u2u"); err != nil {
		t.Fatal(err)
	}
	wantPage(t, "users", al.get("/u2u/u2u"), http.StatusOK, `<option value="bob">`, "<td>bob</td>", "<td>alice</td>")

	const note = "meet at noon, bring the keys"
	send := form(tok, "recipient", bob, "message", note, "associated_data", "thread-7")
	refusedCSRF(t, al, "/u2u/u2u/send", send)
	r = al.post("/u2u/u2u/send", send)
	wantPage(t, "sent", r, http.StatusOK, `id="sent-to">bob<`, `download="message.u2u"`)
	if strings.Contains(r.body, note) {
		t.Fatal("the send answer shows the plaintext again")
	}
	sealed := pre(t, r, "sealed-message")
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		t.Fatalf("sealed message %q: %v", sealed, err)
	}
	if o, err := h.client(t, bob).Open(ctx, "u2u", raw, []byte("thread-7")); err != nil || o.Sender != alice || string(o.Plaintext) != note {
		t.Fatalf("the page's message over the API: %+v %v", o, err)
	}

	// bob opens it on his page.
	b := h.web(t, bob)
	btok := b.csrf("/u2u/u2u")
	open := form(btok, "message", sealed, "associated_data", "thread-7")
	refusedCSRF(t, b, "/u2u/u2u/open", open)
	r = b.post("/u2u/u2u/open", open)
	wantPage(t, "opened", r, http.StatusOK, `id="opened-sender">alice<`, `id="once"`)
	if got := pre(t, r, "opened-plaintext"); got != note {
		t.Fatalf("opened %q, want %q", got, note)
	}
	// A message from the API opens too (the page reads what the CLI writes).
	apiMsg, err := h.client(t, alice).Send(ctx, "u2u", bob, []byte("second note"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r = b.post("/u2u/u2u/open", form(btok, "message", base64.StdEncoding.EncodeToString(apiMsg.Message)))
	if got := pre(t, r, "opened-plaintext"); got != "second note" {
		t.Fatalf("opened %q", got)
	}
	tampered := append([]byte(nil), raw...)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name string
		c    *webClient
		msg  string
		ad   string
		code int
		text string
	}{
		{"the sender", al, sealed, "thread-7", http.StatusForbidden, "addressed to bob, not alice"},
		{"another user", h.web(t, carol), sealed, "thread-7", http.StatusForbidden, "addressed to bob, not carol"},
		{"other associated data", b, sealed, "thread-8", http.StatusBadRequest, "does not open"},
		{"a changed byte", b, base64.StdEncoding.EncodeToString(tampered), "thread-7", http.StatusBadRequest, "does not open"},
		{"not base64", b, "not a message!", "", http.StatusBadRequest, "message"},
	} {
		r := tc.c.post("/u2u/u2u/open", form(tc.c.csrf("/u2u/u2u"), "message", tc.msg, "associated_data", tc.ad))
		wantPage(t, "open: "+tc.name, r, tc.code, `id="open"`)
		wantText(t, "open: "+tc.name, r, tc.text, tc.msg+"</textarea>")
		if hasID(r, "opened") || strings.Contains(r.body, note) {
			t.Fatalf("open: %s: opened", tc.name)
		}
	}
	r = al.post("/u2u/u2u/send", form(tok, "recipient", "nobody", "message", "hello"))
	wantPage(t, "send to nobody", r, http.StatusNotFound, "nobody has no u2u key yet", `value="nobody"`, "hello</textarea>")

	// Rotation: old messages still open.
	wantRedirect(t, "rotate", al.post("/u2u/u2u/keys/rotate", form(tok)), "/u2u/u2u")
	wantPage(t, "rotated", al.get("/u2u/u2u"), http.StatusOK, "Your key pair is rotated: version 2.", `id="my-version">2<`)
	if got := pre(t, b.post("/u2u/u2u/open", open), "opened-plaintext"); got != note {
		t.Fatalf("after the sender's rotation: %q", got)
	}

	// gina has no rule: the API's denials, nothing sent.
	g := h.web(t, gina)
	page = g.get("/u2u/u2u")
	wantPage(t, "guest page", page, http.StatusOK, `id="key-denied"`, "gina may not read user/gina", `id="users-denied"`, "gina may not read users")
	r = g.post("/u2u/u2u/send", form(field(t, csrfField, page), "recipient", bob, "message", "hi"))
	wantPage(t, "guest sends", r, http.StatusForbidden, "gina may not send user/bob")
	if _, err := ad.U2UKey(ctx, "u2u", gina); client.KindOf(err) != apierr.NotFound {
		t.Fatalf("the guest's refused send made a key: %v", err)
	}

	sealedPages(t, h, b, []string{"/u2u/u2u"}, map[string]url.Values{"/u2u/u2u/open": {"message": {sealed}}})
}

// TestWebUIMountsLinkByType: the start page links each mount to its
// engine's pages, and each engine's pages carry its own tabs.
func TestWebUIMountsLinkByType(t *testing.T) {
	h := startEnginesUI(t)
	if _, err := h.client(t, admin).GenerateRoot(t.Context(), "pki", client.RootRequest{}); err != nil {
		t.Fatal(err)
	}
	a := h.web(t, admin)
	home := a.get("/")
	wantPage(t, "home", home, http.StatusOK, `href="/mounts/pki">pki<`, `href="/ssh/ssh">ssh<`, `href="/transit/transit">transit<`,
		`href="/u2u/u2u">u2u<`, `href="/ssh/ssh/sign"`)
	for path, tabs := range map[string][]string{
		"/mounts/pki":      {`href="/mounts/pki/issue"`, `href="/mounts/pki/eab"`},
		"/ssh/ssh":         {`href="/ssh/ssh/profiles"`, `href="/ssh/ssh/sign"`, `href="/ssh/ssh/certs"`},
		"/transit/transit": {`href="/transit/transit" class="active"`},
		"/u2u/u2u":         {`href="/u2u/u2u" class="active"`},
	} {
		r := a.get(path)
		wantPage(t, path, r, http.StatusOK, tabs...)
		if other := strings.Count(r.body, `href="/mounts/`) + strings.Count(r.body, `href="/ssh/`) + strings.Count(r.body, `href="/transit/`) +
			strings.Count(r.body, `href="/u2u/`); other != strings.Count(r.body, `href="`+path) {
			t.Errorf("%s links to another mount's pages", path)
		}
	}
	// A page of another engine's type: the API's 412 naming the type.
	wantPage(t, "transit page of an SSH mount", a.get("/transit/ssh"), http.StatusPreconditionFailed, "not transit")
	wantPage(t, "u2u page of a CA mount", a.get("/u2u/pki"), http.StatusPreconditionFailed, "not u2u")
	r := a.get("/ssh/transit")
	wantPage(t, "SSH page of a transit mount", r, http.StatusPreconditionFailed, "is a transit mount, not an SSH CA")
	if hasID(r, "generate-ca") {
		t.Fatal("a transit mount is offered an SSH CA key")
	}
	wantPage(t, "page of no mount", a.get("/u2u/nope"), http.StatusNotFound, "404 Not Found")
}
