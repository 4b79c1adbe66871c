package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/identity/passkeytest"
)

// passkeyOrigin is the web origin the test relying party accepts; the
// software authenticator reports it, wherever the server really listens.
const passkeyOrigin = "https://localhost:8443"

const webauthnTOML = `
[webauthn]
rp_id = "localhost"
rp_origins = ["https://localhost:8443"]
`

// webCall is one REST request with optional bearer token and cookies,
// answering the response (body read) for tests that need its cookies.
func (h *harness) webCall(t *testing.T, method, path, token string, cookies []*http.Cookie, hdr map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// registerPasskey runs the REST registration ceremony for the token's
// account with dev.
func (h *harness) registerPasskey(t *testing.T, tok string, dev *passkeytest.Authenticator, name string) identity.PasskeyInfo {
	t.Helper()
	resp, opts := h.webCall(t, http.MethodPost, "/v1/webauthn/register/begin", tok, nil, nil, nil)
	ceremony := cookieNamed(resp, "__Secure-mc_webauthn")
	if resp.StatusCode != http.StatusOK || ceremony == nil || !ceremony.HttpOnly || !ceremony.Secure {
		t.Fatalf("register/begin = %d %s, ceremony cookie %+v", resp.StatusCode, opts, ceremony)
	}
	cred, err := dev.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"name": name, "credential": json.RawMessage(cred)})
	if err != nil {
		t.Fatal(err)
	}
	resp, data := h.webCall(t, http.MethodPost, "/v1/webauthn/register/finish", tok, []*http.Cookie{ceremony}, nil, body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register/finish = %d %s", resp.StatusCode, data)
	}
	var info identity.PasskeyInfo
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// passkeyLogin runs the REST login ceremony as a browser would (CSRF cookie
// and header, ceremony cookie) and returns the finish answer.
func (h *harness) passkeyLogin(t *testing.T, dev *passkeytest.Authenticator) (*http.Response, []byte) {
	t.Helper()
	page, html := h.webCall(t, http.MethodGet, "/login", "", nil, nil, nil)
	csrfCookie, m := cookieNamed(page, "__Host-mc_csrf"), csrfMeta.FindSubmatch(html)
	if csrfCookie == nil || m == nil {
		t.Fatalf("GET /login gave no CSRF cookie or token: %d", page.StatusCode)
	}
	hdr := map[string]string{"X-CSRF-Token": string(m[1])}
	if resp, _ := h.webCall(t, http.MethodPost, "/v1/webauthn/login/begin", "", []*http.Cookie{csrfCookie}, nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login/begin without the CSRF header = %d, want 403", resp.StatusCode)
	}
	resp, opts := h.webCall(t, http.MethodPost, "/v1/webauthn/login/begin", "", []*http.Cookie{csrfCookie}, hdr, nil)
	ceremony := cookieNamed(resp, "__Secure-mc_webauthn")
	if resp.StatusCode != http.StatusOK || ceremony == nil {
		t.Fatalf("login/begin = %d %s", resp.StatusCode, opts)
	}
	assertion, err := dev.Get(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h.webCall(t, http.MethodPost, "/v1/webauthn/login/finish", "", []*http.Cookie{csrfCookie, ceremony}, hdr, assertion)
}

func TestPasskeyRESTAndGRPC(t *testing.T) {
	h := start(t, webauthnTOML)
	admin := h.login(t, adminUser, adminPassword)
	h.createUser(t, admin, "alice")
	h.createUser(t, admin, "bob")
	alice, bob := h.login(t, "alice", userPassword), h.login(t, "bob", userPassword)

	dev := passkeytest.New(passkeyOrigin)
	dev.BackupEligible, dev.BackupState = true, true
	info := h.registerPasskey(t, alice, dev, "laptop")
	if info.Name != "laptop" || !info.BackupEligible || !info.BackupState {
		t.Fatalf("registered %+v", info)
	}

	// REST and gRPC list the same passkey.
	var rest struct {
		Passkeys []identity.PasskeyInfo `json:"passkeys"`
	}
	h.call(t, http.MethodGet, "/v1/accounts/alice/passkeys", alice, nil, http.StatusOK, &rest)
	got, err := mciasv1.NewPasskeyServiceClient(h.conn).ListPasskeys(withToken(t.Context(), admin), &mciasv1.ListPasskeysRequest{Account: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Passkeys) != 1 || len(got.GetPasskeys()) != 1 {
		t.Fatalf("REST %+v, gRPC %+v", rest.Passkeys, got.GetPasskeys())
	}
	r, g := rest.Passkeys[0], got.GetPasskeys()[0]
	if r.ID != g.GetId() || r.Name != g.GetName() || r.BackupEligible != g.GetBackupEligible() ||
		r.BackupState != g.GetBackupState() || !slices.Equal(r.Transports, g.GetTransports()) || r.AAGUID != g.GetAaguid() ||
		!r.CreatedAt.Equal(g.GetCreatedAt().AsTime()) || g.LastUsedAt != nil {
		t.Fatalf("REST and gRPC disagree:\nREST %+v\ngRPC %+v", r, g)
	}

	// Only alice and admins see or change alice's passkeys, in both APIs.
	pk := mciasv1.NewPasskeyServiceClient(h.conn)
	if _, err := pk.ListPasskeys(withToken(t.Context(), bob), &mciasv1.ListPasskeysRequest{Account: "alice"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("bob lists alice's passkeys over gRPC: %v", err)
	}
	if code, _ := h.rest(t, http.MethodDelete, "/v1/accounts/alice/passkeys/"+info.ID, bob, nil); code != http.StatusForbidden {
		t.Fatalf("bob deletes alice's passkey over REST: %d", code)
	}
	renamed, err := pk.RenamePasskey(withToken(t.Context(), alice), &mciasv1.RenamePasskeyRequest{Account: "alice", CredentialId: info.ID, Name: "work laptop"})
	if err != nil || renamed.GetPasskey().GetName() != "work laptop" {
		t.Fatalf("gRPC rename = %v, %v", renamed, err)
	}
	var patched identity.PasskeyInfo
	h.call(t, http.MethodPatch, "/v1/accounts/alice/passkeys/"+info.ID, alice, map[string]string{"name": "laptop 2"}, http.StatusOK, &patched)
	if patched.Name != "laptop 2" {
		t.Fatalf("REST rename = %+v", patched)
	}
	if _, err := pk.RenamePasskey(withToken(t.Context(), alice), &mciasv1.RenamePasskeyRequest{Account: "alice", CredentialId: info.ID, Name: ""}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC rename to an empty name: %v", err)
	}

	// The browser login: a token in the answer and the same as the session.
	resp, data := h.passkeyLogin(t, dev)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login/finish = %d %s", resp.StatusCode, data)
	}
	var iss issued
	if err := json.Unmarshal(data, &iss); err != nil {
		t.Fatal(err)
	}
	sess := cookieNamed(resp, "__Host-mc_session")
	if sess == nil || sess.Value != iss.Token || !sess.HttpOnly || !sess.Secure || sess.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", sess)
	}
	if v := h.validate(t, iss.Token); !v.Valid || v.Username != "alice" {
		t.Fatalf("passkey token validates as %+v", v)
	}
	got, err = pk.ListPasskeys(withToken(t.Context(), alice), &mciasv1.ListPasskeysRequest{Account: "alice"})
	if err != nil || got.GetPasskeys()[0].GetLastUsedAt() == nil {
		t.Fatalf("last_used_at not set after a login: %v %v", got, err)
	}

	// Deleted over gRPC, the passkey no longer logs in.
	if _, err := pk.DeletePasskey(withToken(t.Context(), admin), &mciasv1.DeletePasskeyRequest{Account: "alice", CredentialId: info.ID}); err != nil {
		t.Fatal(err)
	}
	if resp, data := h.passkeyLogin(t, dev); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a deleted passkey = %d %s", resp.StatusCode, data)
	}
	if _, err := pk.DeletePasskey(withToken(t.Context(), admin), &mciasv1.DeletePasskeyRequest{Account: "alice", CredentialId: info.ID}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestPasskeysOffWithoutConfig(t *testing.T) {
	h := start(t, "")
	admin := h.login(t, adminUser, adminPassword)
	if code, body := h.rest(t, http.MethodPost, "/v1/webauthn/register/begin", admin, nil); code != http.StatusNotFound {
		t.Fatalf("register/begin without [webauthn] = %d %s", code, body)
	}
	// Listing still works (and is empty).
	var rest struct {
		Passkeys []identity.PasskeyInfo `json:"passkeys"`
	}
	h.call(t, http.MethodGet, "/v1/accounts/admin/passkeys", admin, nil, http.StatusOK, &rest)
	if rest.Passkeys == nil || len(rest.Passkeys) != 0 {
		t.Fatalf("passkeys = %#v", rest.Passkeys)
	}
}
