package server_test

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/totp"
)

// denyRule is a policy that refuses logins on behalf of the service
// "mcat-deny", ahead of the default allow rule.
var denyRule = policy.Rule{
	Priority: 10, Effect: policy.Deny, Actions: []string{policy.ActionLogin},
	ServiceNames: []string{"mcat-deny"}, Description: "test: deny mcat-deny",
}

func TestRESTHealth(t *testing.T) {
	h := start(t, "")
	code, body := h.rest(t, http.MethodGet, "/v1/health", "", nil)
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Fatalf("GET /v1/health = %d %s", code, body)
	}
}

func TestRESTLogin(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice")

	t.Run("ok", func(t *testing.T) {
		var out issued
		h.call(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "alice", Password: userPassword}, http.StatusOK, &out)
		if out.Token == "" || time.Until(out.ExpiresAt) < 11*time.Hour {
			t.Fatalf("login = %+v; want a token valid for about 12h", out)
		}
		if v := h.validate(t, out.Token); !v.Valid || v.Username != "alice" || !slices.Equal(v.Roles, []string{"user"}) {
			t.Fatalf("validate = %+v", v)
		}
	})

	t.Run("bad credentials look alike", func(t *testing.T) {
		wrongCode, wrongBody := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "alice", Password: "not-the-password"})
		unknownCode, unknownBody := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "nobody", Password: "not-the-password"})
		if wrongCode != http.StatusUnauthorized || unknownCode != http.StatusUnauthorized {
			t.Fatalf("wrong password = %d, unknown user = %d; want 401 both", wrongCode, unknownCode)
		}
		if !bytes.Equal(wrongBody, unknownBody) {
			t.Fatalf("bodies differ: wrong password %q, unknown user %q", wrongBody, unknownBody)
		}
		// A success clears alice's failure count for the next subtests.
		h.login(t, "alice", userPassword)
	})

	t.Run("policy deny", func(t *testing.T) {
		var rule policy.Rule
		h.call(t, http.MethodPost, "/v1/policies", adminTok, denyRule, http.StatusCreated, &rule)
		code, body := h.rest(t, http.MethodPost, "/v1/auth/login", "",
			loginBody{Username: "alice", Password: userPassword, ServiceName: "mcat-deny"})
		if code != http.StatusForbidden || errorOf(t, body) != "login denied by policy" {
			t.Fatalf("login for mcat-deny = %d %s; want 403", code, body)
		}
		// Other services still get in, and a wrong password is still 401,
		// not 403: policy is consulted only once the credentials check out.
		h.call(t, http.MethodPost, "/v1/auth/login", "",
			loginBody{Username: "alice", Password: userPassword, ServiceName: "mcat"}, http.StatusOK, nil)
		if code, _ := h.rest(t, http.MethodPost, "/v1/auth/login", "",
			loginBody{Username: "alice", Password: "wrong-password!", ServiceName: "mcat-deny"}); code != http.StatusUnauthorized {
			t.Fatalf("wrong password for mcat-deny = %d; want 401", code)
		}
		h.call(t, http.MethodDelete, "/v1/policies/"+strconv.FormatInt(rule.ID, 10), adminTok, nil, http.StatusNoContent, nil)
		h.login(t, "alice", userPassword)
	})

	t.Run("throttled", func(t *testing.T) {
		h.createUser(t, adminTok, "mallory")
		var throttled [][]byte
		for _, user := range []string{"mallory", "no-such-user"} {
			for i := range 3 {
				if code, body := h.rest(t, http.MethodPost, "/v1/auth/login", "",
					loginBody{Username: user, Password: "wrong-password!"}); code != http.StatusUnauthorized {
					t.Fatalf("%s failure %d = %d %s; want 401", user, i+1, code, body)
				}
			}
			// Past the limit even the right password is refused.
			code, body := h.rest(t, http.MethodPost, "/v1/auth/login", "",
				loginBody{Username: user, Password: userPassword})
			if code != http.StatusTooManyRequests {
				t.Fatalf("%s after 3 failures = %d %s; want 429", user, code, body)
			}
			throttled = append(throttled, body)
		}
		if !bytes.Equal(throttled[0], throttled[1]) {
			t.Fatalf("429 bodies differ for a real and an unknown account: %q vs %q", throttled[0], throttled[1])
		}
		// Other accounts are not affected.
		h.login(t, "alice", userPassword)
	})
}

func TestRESTTOTP(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	bob := h.createUser(t, adminTok, "bob")
	bobTok := h.login(t, "bob", userPassword)

	var enr identity.TOTPEnrollment
	h.call(t, http.MethodPost, "/v1/accounts/bob/totp", bobTok, nil, http.StatusOK, &enr)
	if enr.Secret == "" || !strings.HasPrefix(enr.URI, "otpauth://totp/") {
		t.Fatalf("enroll = %+v", enr)
	}
	// Enrolment alone does not change login.
	h.login(t, "bob", userPassword)
	// Only the account itself enrols, not even an admin on its behalf.
	h.call(t, http.MethodPost, "/v1/accounts/bob/totp", adminTok, nil, http.StatusForbidden, nil)

	h.call(t, http.MethodPost, "/v1/accounts/bob/totp/confirm", bobTok, map[string]string{"code": "000000x"}, http.StatusBadRequest, nil)
	var confirmed struct {
		RecoveryCodes []string `json:"recovery_codes"`
		issued
	}
	h.call(t, http.MethodPost, "/v1/accounts/"+bob.ID+"/totp/confirm", bobTok,
		map[string]string{"code": code(t, enr.Secret, time.Now())}, http.StatusOK, &confirmed)
	if len(confirmed.RecoveryCodes) != identity.RecoveryCodeCount {
		t.Fatalf("got %d recovery codes, want %d", len(confirmed.RecoveryCodes), identity.RecoveryCodeCount)
	}
	// Turning TOTP on revoked bob's tokens; the answer carries the next.
	if h.validate(t, bobTok).Valid || !h.validate(t, confirmed.Token).Valid {
		t.Fatal("after ConfirmTOTP the old token must be invalid and the answered one valid")
	}
	bobTok = confirmed.Token

	code401 := func(t *testing.T, b loginBody, wantMsg string) {
		t.Helper()
		code, body := h.rest(t, http.MethodPost, "/v1/auth/login", "", b)
		if code != http.StatusUnauthorized || errorOf(t, body) != wantMsg {
			t.Fatalf("login = %d %s; want 401 %q", code, body, wantMsg)
		}
	}
	code401(t, loginBody{Username: "bob", Password: userPassword}, "totp code required")

	// The confirmation used the current step, so the next one is the
	// first unused code (one step of drift is accepted).
	next := code(t, enr.Secret, time.Now().Add(totp.Period))
	h.call(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "bob", Password: userPassword, TOTPCode: next}, http.StatusOK, nil)
	code401(t, loginBody{Username: "bob", Password: userPassword, TOTPCode: next}, "invalid credentials")

	recovery := confirmed.RecoveryCodes[0]
	h.call(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "bob", Password: userPassword, TOTPCode: recovery}, http.StatusOK, nil)
	code401(t, loginBody{Username: "bob", Password: userPassword, TOTPCode: recovery}, "invalid credentials")

	// A recovery code with a wrong password is bad credentials and does
	// not use the code up.
	code401(t, loginBody{Username: "bob", Password: "wrong-password!", TOTPCode: confirmed.RecoveryCodes[1]}, "invalid credentials")
	h.call(t, http.MethodPost, "/v1/auth/login", "",
		loginBody{Username: "bob", Password: userPassword, TOTPCode: confirmed.RecoveryCodes[1]}, http.StatusOK, nil)

	var got identity.Account
	h.call(t, http.MethodGet, "/v1/accounts/bob", bobTok, nil, http.StatusOK, &got)
	if !got.TOTPEnabled {
		t.Fatal("account does not report totp_enabled")
	}
	// The account itself turns it off only with a code, in the body.
	h.call(t, http.MethodDelete, "/v1/accounts/bob/totp", bobTok, nil, http.StatusUnauthorized, nil)
	var off issued
	h.call(t, http.MethodDelete, "/v1/accounts/bob/totp", bobTok, map[string]string{"code": confirmed.RecoveryCodes[2]}, http.StatusOK, &off)
	if h.validate(t, bobTok).Valid || !h.validate(t, off.Token).Valid {
		t.Fatal("after DisableTOTP the old token must be invalid and the answered one valid")
	}
	bobTok = off.Token
	h.login(t, "bob", userPassword)

	// An admin turns it off without a code (lost device), which ends
	// bob's sessions and answers no token (the admin's is untouched).
	h.call(t, http.MethodPost, "/v1/accounts/bob/totp", bobTok, nil, http.StatusOK, &enr)
	h.call(t, http.MethodPost, "/v1/accounts/bob/totp/confirm", bobTok,
		map[string]string{"code": code(t, enr.Secret, time.Now())}, http.StatusOK, &confirmed)
	bobTok = confirmed.Token
	code401(t, loginBody{Username: "bob", Password: userPassword}, "totp code required")
	code, body := h.rest(t, http.MethodDelete, "/v1/accounts/bob/totp", adminTok, nil)
	if code != http.StatusOK || string(body) != `{"token":"","expires_at":null}`+"\n" {
		t.Fatalf("admin DisableTOTP = %d %s", code, body)
	}
	if h.validate(t, bobTok).Valid || !h.validate(t, adminTok).Valid {
		t.Fatal("admin DisableTOTP must end bob's sessions and only bob's")
	}
	h.login(t, "bob", userPassword)
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.Code(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRESTSystemToken(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)

	var sys identity.Account
	h.call(t, http.MethodPost, "/v1/accounts", adminTok,
		identity.CreateAccountRequest{Username: "mcr-agent", AccountType: "system"}, http.StatusCreated, &sys)
	if sys.AccountType != "system" || len(sys.Roles) != 0 {
		t.Fatalf("created %+v", sys)
	}
	// Without a password the account cannot log in, only receive tokens.
	if code, _ := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "mcr-agent", Password: "anything-at-all"}); code != http.StatusUnauthorized {
		t.Fatalf("password login of a system account = %d; want 401", code)
	}

	var long issued
	h.call(t, http.MethodPost, "/v1/accounts/"+sys.ID+"/token", adminTok, nil, http.StatusOK, &long)
	if d := time.Until(long.ExpiresAt); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Fatalf("default system token lifetime %s; want 365 days", d)
	}
	v := h.validate(t, long.Token)
	if !v.Valid || v.AccountType != "system" || len(v.Roles) != 0 || v.Username != "mcr-agent" || v.Subject != sys.ID {
		t.Fatalf("validate system token = %+v", v)
	}

	var short issued
	h.call(t, http.MethodPost, "/v1/accounts/mcr-agent/token", adminTok, map[string]string{"ttl": "1h"}, http.StatusOK, &short)
	if d := time.Until(short.ExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("ttl 1h gave a token expiring in %s", d)
	}
	for _, bad := range []string{`{"ttl":"soon"}`, `{"ttl":"-1h"}`, `{"ttl":"9000h"}`} {
		h.call(t, http.MethodPost, "/v1/accounts/mcr-agent/token", adminTok, bad, http.StatusBadRequest, nil)
	}
	// Humans do not get password-less tokens.
	h.call(t, http.MethodPost, "/v1/accounts/admin/token", adminTok, nil, http.StatusBadRequest, nil)
}

func TestRESTTokenLifecycle(t *testing.T) {
	h := start(t, "")

	t.Run("renew", func(t *testing.T) {
		old := h.login(t, adminUser, adminPassword)
		var renewed issued
		h.call(t, http.MethodPost, "/v1/auth/renew", old, nil, http.StatusOK, &renewed)
		if renewed.Token == "" || renewed.Token == old {
			t.Fatalf("renew answered %+v", renewed)
		}
		if v := h.validate(t, old); v.Valid {
			t.Fatalf("old token still valid after renew: %+v", v)
		}
		if v := h.validate(t, renewed.Token); !v.Valid || v.Username != adminUser {
			t.Fatalf("renewed token = %+v", v)
		}
	})

	t.Run("logout", func(t *testing.T) {
		tok := h.login(t, adminUser, adminPassword)
		var who validation
		h.call(t, http.MethodGet, "/v1/whoami", tok, nil, http.StatusOK, &who)
		if who.Username != adminUser || !slices.Contains(who.Roles, "admin") {
			t.Fatalf("whoami = %+v", who)
		}
		h.call(t, http.MethodPost, "/v1/auth/logout", tok, nil, http.StatusNoContent, nil)
		if v := h.validate(t, tok); v.Valid {
			t.Fatal("token valid after logout")
		}
	})

	t.Run("revoke by jti", func(t *testing.T) {
		adminTok := h.login(t, adminUser, adminPassword)
		h.createUser(t, adminTok, "carol")
		carolTok := h.login(t, "carol", userPassword)
		other := h.login(t, "carol", userPassword)

		var list struct {
			Tokens []identity.TokenInfo `json:"tokens"`
		}
		h.call(t, http.MethodGet, "/v1/accounts/carol/tokens", carolTok, nil, http.StatusOK, &list)
		if len(list.Tokens) != 2 {
			t.Fatalf("carol has %d tokens listed, want 2", len(list.Tokens))
		}
		// carol may not revoke the admin's token, but may revoke her own.
		h.call(t, http.MethodPost, "/v1/token/revoke", carolTok, map[string]string{"jti": jtiOf(t, adminTok)}, http.StatusForbidden, nil)
		h.call(t, http.MethodPost, "/v1/token/revoke", carolTok, map[string]string{"jti": jtiOf(t, other)}, http.StatusNoContent, nil)
		if h.validate(t, other).Valid {
			t.Fatal("revoked token still valid")
		}
		if !h.validate(t, carolTok).Valid {
			t.Fatal("revoking one token revoked another")
		}
		// The admin revokes anyone's.
		h.call(t, http.MethodPost, "/v1/token/revoke", adminTok, map[string]string{"jti": jtiOf(t, carolTok)}, http.StatusNoContent, nil)
		if h.validate(t, carolTok).Valid {
			t.Fatal("token revoked by the admin still valid")
		}
		h.call(t, http.MethodPost, "/v1/token/revoke", adminTok, map[string]string{"jti": "0123456789abcdef"}, http.StatusNotFound, nil)
	})

	t.Run("garbage is not valid", func(t *testing.T) {
		for _, tok := range []string{"", "x", "a.b.c", h.login(t, adminUser, adminPassword) + "x"} {
			code, body := h.rest(t, http.MethodPost, "/v1/token/validate", "", map[string]string{"token": tok})
			if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"valid":false}` {
				t.Fatalf("validate %q = %d %s; want 200 {\"valid\":false}", tok, code, body)
			}
		}
	})
}

// TestRESTRefusedBearerIs401 checks that a bearer token MCIAS no longer
// accepts (renewed, logged out, revoked, account disabled, or garbage) is
// answered 401 on authenticated endpoints, as PLATFORM.md §4 requires.
//
// Regression: identity.ErrInvalidToken once was its own sentinel, which
// auth.StatusCode did not recognise, so REST answered 503 here.
func TestRESTRefusedBearerIs401(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "ivan")

	renewed := h.login(t, "ivan", userPassword)
	h.call(t, http.MethodPost, "/v1/auth/renew", renewed, nil, http.StatusOK, nil)
	loggedOut := h.login(t, "ivan", userPassword)
	h.call(t, http.MethodPost, "/v1/auth/logout", loggedOut, nil, http.StatusNoContent, nil)
	revoked := h.login(t, "ivan", userPassword)
	h.call(t, http.MethodPost, "/v1/token/revoke", adminTok, map[string]string{"jti": jtiOf(t, revoked)}, http.StatusNoContent, nil)
	disabled := h.login(t, "ivan", userPassword)
	h.call(t, http.MethodPatch, "/v1/accounts/ivan", adminTok, map[string]string{"status": "disabled"}, http.StatusOK, nil)

	for name, tok := range map[string]string{
		"renewed": renewed, "logged out": loggedOut, "revoked": revoked, "disabled": disabled, "garbage": "not-a-token",
	} {
		code, body := h.rest(t, http.MethodGet, "/v1/whoami", tok, nil)
		if code != http.StatusUnauthorized || errorOf(t, body) != "invalid or expired token" {
			t.Errorf("%s token: GET /v1/whoami = %d %s; want 401 invalid or expired token", name, code, body)
		}
		code, _ = h.rest(t, http.MethodPost, "/v1/auth/renew", tok, nil)
		if code != http.StatusUnauthorized {
			t.Errorf("%s token: POST /v1/auth/renew = %d; want 401", name, code)
		}
	}
}

func TestRESTKeyRotation(t *testing.T) {
	h := start(t, "")
	before := h.login(t, adminUser, adminPassword)
	oldKid := kidOf(t, before)

	var rotated identity.KeyInfo
	h.call(t, http.MethodPost, "/v1/keys/rotate", before, nil, http.StatusOK, &rotated)
	if !rotated.Active || rotated.ID == "" || rotated.ID == oldKid {
		t.Fatalf("rotate = %+v (old kid %s)", rotated, oldKid)
	}
	if !h.validate(t, before).Valid {
		t.Fatal("a token signed before the rotation no longer validates")
	}
	after := h.login(t, adminUser, adminPassword)
	if kid := kidOf(t, after); kid != rotated.ID {
		t.Fatalf("new token kid %s; want the new key %s", kid, rotated.ID)
	}

	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			X   string `json:"x"`
		} `json:"keys"`
	}
	h.call(t, http.MethodGet, "/.well-known/jwks.json", "", nil, http.StatusOK, &jwks)
	var kids []string
	for _, k := range jwks.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.X == "" {
			t.Fatalf("jwk %+v", k)
		}
		kids = append(kids, k.Kid)
	}
	if len(kids) != 2 || !slices.Contains(kids, oldKid) || !slices.Contains(kids, rotated.ID) {
		t.Fatalf("JWKS kids %v; want %s and %s", kids, oldKid, rotated.ID)
	}

	var keys struct {
		Keys []identity.KeyInfo `json:"keys"`
	}
	h.call(t, http.MethodGet, "/v1/keys", after, nil, http.StatusOK, &keys)
	active := 0
	for _, k := range keys.Keys {
		if k.Active {
			active++
			if k.ID != rotated.ID {
				t.Fatalf("active key %s; want %s", k.ID, rotated.ID)
			}
		}
	}
	if len(keys.Keys) != 2 || active != 1 {
		t.Fatalf("keys %+v; want 2 with one active", keys.Keys)
	}
}

func TestRESTDisabledAccount(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "dave")
	daveTok := h.login(t, "dave", userPassword)

	var a identity.Account
	h.call(t, http.MethodPatch, "/v1/accounts/dave", adminTok, map[string]string{"status": "disabled"}, http.StatusOK, &a)
	if a.Status != "disabled" {
		t.Fatalf("status %q", a.Status)
	}
	if v := h.validate(t, daveTok); v.Valid {
		t.Fatalf("token of a disabled account validates: %+v", v)
	}
	if code, _ := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "dave", Password: userPassword}); code != http.StatusUnauthorized {
		t.Fatalf("login of a disabled account = %d; want 401", code)
	}
	// Re-enabling lets dave log in again, but the old token stays revoked.
	h.call(t, http.MethodPatch, "/v1/accounts/dave", adminTok, map[string]string{"status": "active"}, http.StatusOK, nil)
	h.login(t, "dave", userPassword)
	if h.validate(t, daveTok).Valid {
		t.Fatal("token issued before the account was disabled is valid again")
	}
}

func TestRESTAdminOnly(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	erin := h.createUser(t, adminTok, "erin")
	h.createUser(t, adminTok, "frank")
	erinTok := h.login(t, "erin", userPassword)

	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/accounts", nil},
		{http.MethodPost, "/v1/accounts", identity.CreateAccountRequest{Username: "x", AccountType: "human", Password: userPassword}},
		{http.MethodGet, "/v1/accounts/frank", nil},
		{http.MethodPatch, "/v1/accounts/frank", map[string]string{"status": "disabled"}},
		{http.MethodPatch, "/v1/accounts/erin", map[string]any{"roles": []string{"admin"}}},
		{http.MethodPut, "/v1/accounts/erin/roles", map[string]any{"roles": []string{"admin"}}},
		{http.MethodDelete, "/v1/accounts/frank", nil},
		{http.MethodGet, "/v1/accounts/frank/tokens", nil},
		{http.MethodGet, "/v1/policies", nil},
		{http.MethodPost, "/v1/policies", denyRule},
		{http.MethodGet, "/v1/keys", nil},
		{http.MethodPost, "/v1/keys/rotate", nil},
	} {
		if code, body := h.rest(t, c.method, c.path, erinTok, c.body); code != http.StatusForbidden {
			t.Errorf("non-admin %s %s = %d %s; want 403", c.method, c.path, code, body)
		}
		if code, _ := h.rest(t, c.method, c.path, "", c.body); code != http.StatusUnauthorized {
			t.Errorf("anonymous %s %s = %d; want 401", c.method, c.path, code)
		}
	}
	// Nothing above changed anything.
	var list struct {
		Accounts []identity.Account `json:"accounts"`
	}
	h.call(t, http.MethodGet, "/v1/accounts", adminTok, nil, http.StatusOK, &list)
	if len(list.Accounts) != 3 {
		t.Fatalf("%d accounts after refused requests; want 3", len(list.Accounts))
	}
	// Self-service works.
	var self identity.Account
	h.call(t, http.MethodGet, "/v1/accounts/erin", erinTok, nil, http.StatusOK, &self)
	if self.ID != erin.ID || !slices.Equal(self.Roles, []string{"user"}) {
		t.Fatalf("self = %+v", self)
	}
	h.call(t, http.MethodGet, "/v1/accounts/"+erin.ID+"/tokens", erinTok, nil, http.StatusOK, nil)
	// Password change proves the current password and is self-only.
	h.call(t, http.MethodPost, "/v1/accounts/erin/password", erinTok,
		map[string]string{"current_password": "wrong-password!", "new_password": "erin-new-password"}, http.StatusUnauthorized, nil)
	h.call(t, http.MethodPost, "/v1/accounts/frank/password", adminTok,
		map[string]string{"current_password": adminPassword, "new_password": "frank-new-password"}, http.StatusForbidden, nil)
	var changed issued
	h.call(t, http.MethodPost, "/v1/accounts/erin/password", erinTok,
		map[string]string{"current_password": userPassword, "new_password": "erin-new-password"}, http.StatusOK, &changed)
	if changed.Token == "" || !h.validate(t, changed.Token).Valid || h.validate(t, erinTok).Valid {
		t.Fatalf("password change answered %+v; the new token must validate and the old one not", changed)
	}
	h.login(t, "erin", "erin-new-password")
}

func TestRESTLastAdmin(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPatch, "/v1/accounts/admin", map[string]string{"status": "disabled"}},
		{http.MethodPut, "/v1/accounts/admin/roles", map[string]any{"roles": []string{"user"}}},
		{http.MethodDelete, "/v1/accounts/admin", nil},
	} {
		if code, body := h.rest(t, c.method, c.path, adminTok, c.body); code != http.StatusConflict {
			t.Errorf("%s %s on the last admin = %d %s; want 409", c.method, c.path, code, body)
		}
	}
	if v := h.validate(t, adminTok); !v.Valid || !slices.Contains(v.Roles, "admin") {
		t.Fatalf("last admin after refused changes: %+v", v)
	}
	// With a second admin, the first may step down.
	h.createUser(t, adminTok, "grace", "admin")
	h.call(t, http.MethodPut, "/v1/accounts/admin/roles", adminTok, map[string]any{"roles": []string{"user"}}, http.StatusOK, nil)
	graceTok := h.login(t, "grace", userPassword)
	h.call(t, http.MethodDelete, "/v1/accounts/grace", graceTok, nil, http.StatusConflict, nil)
}

func TestRESTBadInput(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	countAccounts := func() int {
		var list struct {
			Accounts []identity.Account `json:"accounts"`
		}
		h.call(t, http.MethodGet, "/v1/accounts", adminTok, nil, http.StatusOK, &list)
		return len(list.Accounts)
	}
	countPolicies := func() int {
		var list struct {
			Policies []policy.Rule `json:"policies"`
		}
		h.call(t, http.MethodGet, "/v1/policies", adminTok, nil, http.StatusOK, &list)
		return len(list.Policies)
	}
	accounts, policies := countAccounts(), countPolicies()

	for _, c := range []struct {
		name, method, path, body string
	}{
		{"truncated JSON", http.MethodPost, "/v1/accounts", `{"username":"zed","account_type":"human",`},
		{"unknown field", http.MethodPost, "/v1/accounts", `{"username":"zed","account_type":"human","password":"long-enough-password","bogus":1}`},
		{"trailing data", http.MethodPost, "/v1/accounts", `{"username":"zed","account_type":"human","password":"long-enough-password"} {}`},
		{"wrong type", http.MethodPost, "/v1/accounts", `{"username":42,"account_type":"human","password":"long-enough-password"}`},
		{"bad username", http.MethodPost, "/v1/accounts", `{"username":"Zed Zed","account_type":"human","password":"long-enough-password"}`},
		{"short password", http.MethodPost, "/v1/accounts", `{"username":"zed","account_type":"human","password":"short"}`},
		{"bad account type", http.MethodPost, "/v1/accounts", `{"username":"zed","account_type":"robot","password":"long-enough-password"}`},
		{"unknown role", http.MethodPost, "/v1/accounts", `{"username":"zed","account_type":"human","password":"long-enough-password","roles":["root"]}`},
		{"system with roles", http.MethodPost, "/v1/accounts", `{"username":"zed","account_type":"system","roles":["user"]}`},
		{"policy unknown field", http.MethodPost, "/v1/policies", `{"effect":"allow","priority":1,"actionz":["auth:login"]}`},
		{"policy bad effect", http.MethodPost, "/v1/policies", `{"effect":"maybe","priority":1}`},
		{"policy bad priority", http.MethodPost, "/v1/policies", `{"effect":"allow","priority":-1}`},
		{"policy id", http.MethodGet, "/v1/policies/abc", ``},
		{"patch unknown field", http.MethodPatch, "/v1/accounts/admin", `{"stauts":"disabled"}`},
		{"patch bad status", http.MethodPatch, "/v1/accounts/admin", `{"status":"asleep"}`},
		{"login not JSON", http.MethodPost, "/v1/auth/login", `username=admin`},
		{"login unknown field", http.MethodPost, "/v1/auth/login", `{"username":"admin","password":"admin-password-123","otp":"1"}`},
		{"login bad service name", http.MethodPost, "/v1/auth/login", `{"username":"admin","password":"admin-password-123","service_name":"Not A Name"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.rest(t, c.method, c.path, adminTok, c.body)
			if code != http.StatusBadRequest {
				t.Fatalf("= %d %s; want 400", code, body)
			}
			errorOf(t, body)
		})
	}
	if n := countAccounts(); n != accounts {
		t.Errorf("%d accounts after bad requests; want %d", n, accounts)
	}
	if n := countPolicies(); n != policies {
		t.Errorf("%d policies after bad requests; want %d", n, policies)
	}
	var a identity.Account
	h.call(t, http.MethodGet, "/v1/accounts/admin", adminTok, nil, http.StatusOK, &a)
	if a.Status != "active" {
		t.Fatalf("admin status %q after bad patches", a.Status)
	}
	h.call(t, http.MethodGet, "/v1/accounts/zed", adminTok, nil, http.StatusNotFound, nil)
}

// TestAuthClient runs the platform's MCIAS client (mcdsl/auth), which every
// other service uses, against the real MCIAS.
func TestAuthClient(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	h.call(t, http.MethodPost, "/v1/policies", adminTok, denyRule, http.StatusCreated, nil)

	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	client := func(service string) *auth.Client {
		c, err := auth.New(config.MCIAS{ServerURL: h.base, CACert: h.pki.CAFile, ServiceName: service, Tags: []string{"env:test"}},
			auth.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	mcat := client("mcat")
	ctx := t.Context()

	tok, err := mcat.Login(ctx, adminUser, adminPassword, "")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	id, err := mcat.ValidateToken(ctx, tok.Token)
	if err != nil || id.Username != adminUser || !id.IsAdmin() || id.AccountType != auth.AccountHuman {
		t.Fatalf("ValidateToken = %+v, %v", id, err)
	}

	h.call(t, http.MethodPost, "/v1/token/revoke", adminTok, map[string]string{"jti": jtiOf(t, tok.Token)}, http.StatusNoContent, nil)
	if h.validate(t, tok.Token).Valid {
		t.Fatal("MCIAS still accepts the revoked token")
	}
	if _, err := mcat.ValidateToken(ctx, tok.Token); err != nil {
		t.Fatalf("within the cache window the revoked token should still validate from cache: %v", err)
	}
	mu.Lock()
	now = now.Add(auth.DefaultCacheTTL + time.Second)
	mu.Unlock()
	if _, err := mcat.ValidateToken(ctx, tok.Token); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("after the cache window: %v; want ErrInvalidToken", err)
	}

	if _, err := mcat.Login(ctx, adminUser, "wrong-password!", ""); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("wrong password: %v; want ErrBadCredentials", err)
	}
	if _, err := mcat.Login(ctx, "nobody", "wrong-password!", ""); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("unknown user: %v; want ErrBadCredentials", err)
	}
	if _, err := client("mcat-deny").Login(ctx, adminUser, adminPassword, ""); !errors.Is(err, auth.ErrPolicyDenied) {
		t.Fatalf("denied service: %v; want ErrPolicyDenied", err)
	}
	// The denial above was no failure (the password was right), nor a
	// success that clears the count (issue #9): with the wrong password
	// before it, two more failures reach the limit of three.
	for i := range 2 {
		if _, err := mcat.Login(ctx, adminUser, "wrong-password!", ""); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("failure %d: %v; want ErrBadCredentials", i+1, err)
		}
	}
	if _, err := mcat.Login(ctx, adminUser, adminPassword, ""); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("after three failures: %v; want ErrThrottled", err)
	}
}

// TestRESTPolicies runs a rule through its REST life: create (201, the body's
// id ignored), get, replace (the path's id wins over the body's; an empty
// list matches anything), list in evaluation order, delete (204), gone
// (404).
func TestRESTPolicies(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	rule := policy.Rule{
		ID: 424242, Priority: 50, Effect: policy.Allow, Roles: []string{"user"}, AccountTypes: []string{"human"},
		Actions: []string{policy.ActionLogin}, ServiceNames: []string{"mcr"}, RequiredTags: []string{"env:prod"},
		Description: "rest",
	}
	var created policy.Rule
	h.call(t, http.MethodPost, "/v1/policies", adminTok, rule, http.StatusCreated, &created)
	if created.ID == 0 || created.ID == rule.ID || created.Effect != policy.Allow || !slices.Equal(created.RequiredTags, rule.RequiredTags) {
		t.Fatalf("created %+v", created)
	}
	path := "/v1/policies/" + strconv.FormatInt(created.ID, 10)
	var got policy.Rule
	h.call(t, http.MethodGet, path, adminTok, nil, http.StatusOK, &got)
	if got.ID != created.ID || got.Description != "rest" || !slices.Equal(got.ServiceNames, []string{"mcr"}) {
		t.Fatalf("get %+v", got)
	}

	changed := rule
	changed.ID, changed.Effect, changed.Priority, changed.ServiceNames, changed.Description = 1, policy.Deny, 60, nil, "changed"
	var updated policy.Rule
	h.call(t, http.MethodPut, path, adminTok, changed, http.StatusOK, &updated)
	if updated.ID != created.ID || updated.Effect != policy.Deny || updated.Priority != 60 || len(updated.ServiceNames) != 0 || updated.ServiceNames == nil {
		t.Fatalf("updated %+v", updated)
	}
	h.call(t, http.MethodGet, "/v1/policies/1", adminTok, nil, http.StatusOK, &got)
	if got.Description == "changed" {
		t.Fatal("PUT changed the rule named in the body instead of the one in the path")
	}

	var list struct {
		Policies []policy.Rule `json:"policies"`
	}
	h.call(t, http.MethodGet, "/v1/policies", adminTok, nil, http.StatusOK, &list)
	if len(list.Policies) != 2 || list.Policies[0].ID != created.ID || list.Policies[1].Priority != 1000 {
		t.Fatalf("list %+v; want the new rule, then the default one", list.Policies)
	}
	code, body := h.rest(t, http.MethodDelete, path, adminTok, nil)
	if code != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("DELETE %s = %d %q; want 204 and no body", path, code, body)
	}
	h.call(t, http.MethodGet, path, adminTok, nil, http.StatusNotFound, nil)
	h.call(t, http.MethodDelete, path, adminTok, nil, http.StatusNotFound, nil)
}

// TestRESTRouting: unknown paths and methods answer like the rest of the
// API, in JSON.
func TestRESTRouting(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	for _, c := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{http.MethodGet, "/v1/nothing-here", http.StatusNotFound, "no such endpoint"},
		{http.MethodGet, "/v1/accounts/admin/nothing", http.StatusNotFound, "no such endpoint"},
		{http.MethodPut, "/v1/accounts", http.StatusMethodNotAllowed, "method not allowed"},
		{http.MethodGet, "/v1/webauthn/login/begin", http.StatusMethodNotAllowed, "method not allowed"},
	} {
		code, body := h.rest(t, c.method, c.path, adminTok, nil)
		if code != c.code || errorOf(t, body) != c.msg {
			t.Errorf("%s %s = %d %s; want %d %q", c.method, c.path, code, body, c.code, c.msg)
		}
	}
	// Request metrics name routes by their patterns, generated and
	// hand-written alike, never by raw paths.
	h.call(t, http.MethodGet, "/v1/accounts/admin", adminTok, nil, http.StatusOK, nil)
	h.call(t, http.MethodGet, "/.well-known/jwks.json", "", nil, http.StatusOK, nil)
	_, metrics := h.rest(t, http.MethodGet, "/metrics", "", nil)
	for _, want := range []string{`route="/v1/accounts/{account}"`, `route="/.well-known/jwks.json"`, `route="unmatched"`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(metrics), `route="/v1/accounts/admin"`) || strings.Contains(string(metrics), "nothing-here") {
		t.Error("metrics name a raw path")
	}
}
