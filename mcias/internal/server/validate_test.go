package server_test

import (
	"net/http"
	"strings"
	"testing"

	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
)

// TestRevocationIsImmediateOnBothFaces: a token validated over REST and
// gRPC (and so cached by MCIAS) is refused on both at the first request
// after it is revoked, or its password changed, on either face.
func TestRevocationIsImmediateOnBothFaces(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "dora")

	restValid := func(tok string) bool {
		t.Helper()
		code, body := h.rest(t, http.MethodPost, "/v1/token/validate", "", map[string]string{"token": tok})
		switch s := strings.TrimSpace(string(body)); {
		case code != http.StatusOK:
			t.Fatalf("validate = %d %s", code, body)
		case s == `{"valid":false}`:
			return false
		case !strings.HasPrefix(s, `{"valid":true,"subject":"`):
			t.Fatalf("validate answered %s", body)
		}
		return true
	}
	grpcValid := func(tok string) bool {
		t.Helper()
		resp, err := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetValid()
	}
	bothValid := func(tok string) {
		t.Helper()
		for range 2 {
			if !restValid(tok) || !grpcValid(tok) {
				t.Fatal("a fresh token is not valid")
			}
		}
	}
	bothRefuse := func(tok, why string) {
		t.Helper()
		if restValid(tok) {
			t.Fatalf("%s: REST still validates the token", why)
		}
		if grpcValid(tok) {
			t.Fatalf("%s: gRPC still validates the token", why)
		}
	}

	tok := h.login(t, "dora", userPassword)
	bothValid(tok)
	if _, err := h.auth.RevokeToken(withToken(ctx, adminTok), &mciasv1.RevokeTokenRequest{Jti: jtiOf(t, tok)}); err != nil {
		t.Fatal(err)
	}
	bothRefuse(tok, "revoked over gRPC")

	tok = h.login(t, "dora", userPassword)
	bothValid(tok)
	h.call(t, http.MethodPost, "/v1/token/revoke", adminTok, map[string]string{"jti": jtiOf(t, tok)}, http.StatusNoContent, nil)
	bothRefuse(tok, "revoked over REST")

	tok = h.login(t, "dora", userPassword)
	bothValid(tok)
	if _, err := h.accounts.ChangePassword(withToken(ctx, tok), &mciasv1.ChangePasswordRequest{
		Account: "dora", CurrentPassword: userPassword, NewPassword: "dora-new-password-1",
	}); err != nil {
		t.Fatal(err)
	}
	bothRefuse(tok, "password changed over gRPC")
}
