package server_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	mcdslv1 "git.metacircular.net/metacircular/mcdsl/gen/mcdsl/v1"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/server"
)

func TestGRPCAccessLevels(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "judy")
	judyTok := h.login(t, "judy", userPassword)

	hc, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: server.ServiceName})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", hc, err)
	}

	// Public methods need no token.
	if _, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "judy", Password: userPassword}); err != nil {
		t.Fatalf("Login without a token: %v", err)
	}
	if _, err := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: judyTok}); err != nil {
		t.Fatalf("ValidateToken without a token: %v", err)
	}
	jwks, err := h.keys.GetJWKS(ctx, &mciasv1.GetJWKSRequest{})
	if err != nil || len(jwks.GetKeys()) != 1 || jwks.GetKeys()[0].GetKid() != kidOf(t, judyTok) {
		t.Fatalf("GetJWKS = %v, %v", jwks, err)
	}

	// Everything else needs a valid token.
	for name, c := range map[string]context.Context{
		"no token":      ctx,
		"garbage token": withToken(ctx, "garbage"),
	} {
		if _, err := h.auth.WhoAmI(c, &mciasv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("WhoAmI with %s: %v; want Unauthenticated", name, err)
		}
		if _, err := h.accounts.ListAccounts(c, &mciasv1.ListAccountsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("ListAccounts with %s: %v; want Unauthenticated", name, err)
		}
	}

	// Admin rules come from identity.Service, not the interceptor, and
	// give the same answers as REST.
	judy := withToken(ctx, judyTok)
	if _, err := h.accounts.ListAccounts(judy, &mciasv1.ListAccountsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListAccounts as a user: %v; want PermissionDenied", err)
	}
	if _, err := h.keys.RotateKey(judy, &mciasv1.RotateKeyRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("RotateKey as a user: %v; want PermissionDenied", err)
	}
	if _, err := h.accounts.GetAccount(judy, &mciasv1.GetAccountRequest{Account: adminUser}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetAccount of another account as a user: %v; want PermissionDenied", err)
	}
	if a, err := h.accounts.GetAccount(judy, &mciasv1.GetAccountRequest{Account: "judy"}); err != nil || a.GetAccount().GetUsername() != "judy" {
		t.Errorf("GetAccount of self = %v, %v", a, err)
	}

	// Snapshot is the one admin-only method at the interceptor.
	snap := mcdslv1.NewSnapshotServiceClient(h.conn)
	if _, err := snap.Snapshot(judy, &mcdslv1.SnapshotRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Snapshot as a user: %v; want PermissionDenied", err)
	}
	res, err := snap.Snapshot(withToken(ctx, adminTok), &mcdslv1.SnapshotRequest{})
	if err != nil {
		t.Fatalf("Snapshot as admin: %v", err)
	}
	if fi, err := os.Stat(res.GetPath()); err != nil || fi.Size() != res.GetSizeBytes() || !strings.HasPrefix(filepath.Base(res.GetPath()), "mcias-") {
		t.Fatalf("snapshot %+v: stat %v, %v", res, fi, err)
	}
}

func TestGRPCTokens(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()

	login, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: adminUser, Password: adminPassword, ServiceName: "mcat", Tags: []string{"env:test"}})
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(login.GetExpiresAt().AsTime()) < 11*time.Hour {
		t.Fatalf("login expires at %v", login.GetExpiresAt().AsTime())
	}
	admin := withToken(ctx, login.GetToken())
	who, err := h.auth.WhoAmI(admin, &mciasv1.WhoAmIRequest{})
	if err != nil || who.GetUsername() != adminUser || !slices.Equal(who.GetRoles(), []string{"admin"}) || who.GetAccountType() != "human" {
		t.Fatalf("WhoAmI = %v, %v", who, err)
	}

	v, err := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: "garbage"})
	if err != nil || v.GetValid() || v.GetSubject() != "" {
		t.Fatalf("ValidateToken(garbage) = %v, %v; want valid=false and no error", v, err)
	}

	renewed, err := h.auth.Renew(admin, &mciasv1.RenewRequest{})
	if err != nil || renewed.GetToken() == "" || renewed.GetToken() == login.GetToken() {
		t.Fatalf("Renew = %v, %v", renewed, err)
	}
	if v, _ := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: login.GetToken()}); v.GetValid() {
		t.Fatal("token still valid after Renew")
	}
	if _, err := h.auth.WhoAmI(admin, &mciasv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("WhoAmI with the renewed-away token: %v; want Unauthenticated", err)
	}
	admin = withToken(ctx, renewed.GetToken())

	other := h.login(t, adminUser, adminPassword)
	if _, err := h.auth.RevokeToken(admin, &mciasv1.RevokeTokenRequest{Jti: jtiOf(t, other)}); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if v, _ := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: other}); v.GetValid() {
		t.Fatal("token still valid after RevokeToken")
	}
	if _, err := h.auth.RevokeToken(admin, &mciasv1.RevokeTokenRequest{Jti: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("RevokeToken(unknown): %v; want NotFound", err)
	}

	list, err := h.accounts.ListTokens(admin, &mciasv1.ListTokensRequest{Account: adminUser})
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, tk := range list.GetTokens() {
		if tk.GetRevokedAt() != nil {
			revoked++
		}
		if tk.GetJti() == jtiOf(t, renewed.GetToken()) && (tk.GetRevokedAt() != nil || tk.GetKind() != "renew") {
			t.Fatalf("current token listed as %v", tk)
		}
	}
	if len(list.GetTokens()) != 3 || revoked != 2 {
		t.Fatalf("ListTokens = %v; want 3 tokens, 2 revoked", list.GetTokens())
	}

	sys, err := h.accounts.CreateAccount(admin, &mciasv1.CreateAccountRequest{Username: "mcp-agent", AccountType: "system"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{Account: "mcp-agent", Ttl: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(st.GetExpiresAt().AsTime()); d < 119*time.Minute || d > 2*time.Hour {
		t.Fatalf("system token with ttl 2h expires in %s", d)
	}
	sv, err := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: st.GetToken()})
	if err != nil || !sv.GetValid() || sv.GetAccountType() != "system" || sv.GetRoles() == nil || len(sv.GetRoles().GetValues()) != 0 || sv.GetSubject() != sys.GetAccount().GetId() {
		t.Fatalf("ValidateToken(system token) = %v, %v", sv, err)
	}
	for _, ttl := range []string{"-1h", "0s", "soon", "1h garbage"} {
		if _, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{Account: "mcp-agent", Ttl: ttl}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("IssueSystemToken(ttl %q): %v; want InvalidArgument", ttl, err)
		}
	}
	if _, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("IssueSystemToken without an account: %v; want InvalidArgument", err)
	}

	if _, err := h.auth.Logout(admin, &mciasv1.LogoutRequest{}); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if _, err := h.auth.WhoAmI(admin, &mciasv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("WhoAmI after Logout: %v; want Unauthenticated", err)
	}
}

func TestGRPCAccounts(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()
	admin := withToken(ctx, h.login(t, adminUser, adminPassword))

	created, err := h.accounts.CreateAccount(admin, &mciasv1.CreateAccountRequest{
		Username: "kim", AccountType: "human", Password: userPassword, Roles: []string{"user", "guest"},
	})
	if err != nil {
		t.Fatal(err)
	}
	kim := created.GetAccount()
	if kim.GetId() == "" || kim.GetStatus() != "active" || !slices.Equal(kim.GetRoles(), []string{"guest", "user"}) {
		t.Fatalf("created %v", kim)
	}
	if _, err := h.accounts.CreateAccount(admin, &mciasv1.CreateAccountRequest{Username: "kim", AccountType: "human", Password: userPassword}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate CreateAccount: %v; want AlreadyExists", err)
	}

	update := func(req *mciasv1.UpdateAccountRequest) *mciasv1.Account {
		t.Helper()
		out, err := h.accounts.UpdateAccount(admin, req)
		if err != nil {
			t.Fatalf("UpdateAccount(%v): %v", req, err)
		}
		return out.GetAccount()
	}
	// Nothing set: nothing changes.
	if a := update(&mciasv1.UpdateAccountRequest{Account: "kim"}); !slices.Equal(a.GetRoles(), kim.GetRoles()) || a.GetStatus() != "active" {
		t.Fatalf("empty update changed the account: %v", a)
	}
	// An empty role list is present and removes the roles; an absent one
	// does not.
	if a := update(&mciasv1.UpdateAccountRequest{Account: kim.GetId(), Roles: &structpb.ListValue{}}); len(a.GetRoles()) != 0 {
		t.Fatalf("roles after an empty role list: %v", a.GetRoles())
	}
	notString, _ := structpb.NewList([]any{"user", 7.0})
	if _, err := h.accounts.UpdateAccount(admin, &mciasv1.UpdateAccountRequest{Account: "kim", Roles: notString}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("UpdateAccount(roles [\"user\", 7]): %v; want InvalidArgument", err)
	}
	if a := update(&mciasv1.UpdateAccountRequest{Account: "kim", Status: proto.String("disabled")}); a.GetStatus() != "disabled" || len(a.GetRoles()) != 0 {
		t.Fatalf("after disabling: %v", a)
	}
	if a := update(&mciasv1.UpdateAccountRequest{Account: "kim", Status: proto.String("active"), Password: proto.String("kim-reset-password")}); a.GetStatus() != "active" {
		t.Fatalf("after enabling: %v", a)
	}
	if _, err := h.accounts.UpdateAccount(admin, &mciasv1.UpdateAccountRequest{Account: "kim", Status: proto.String("")}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("UpdateAccount(status \"\"): %v; want InvalidArgument (an empty status is set, not absent)", err)
	}
	if a, err := h.accounts.SetRoles(admin, &mciasv1.SetRolesRequest{Account: "kim", Roles: []string{"user"}}); err != nil || !slices.Equal(a.GetAccount().GetRoles(), []string{"user"}) {
		t.Fatalf("SetRoles = %v, %v", a, err)
	}

	kimTok := h.login(t, "kim", "kim-reset-password")
	kimCtx := withToken(ctx, kimTok)
	if _, err := h.accounts.ChangePassword(kimCtx, &mciasv1.ChangePasswordRequest{Account: "kim", CurrentPassword: "wrong-password!", NewPassword: "kim-new-password"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ChangePassword with a wrong current password: %v; want Unauthenticated", err)
	}
	if _, err := h.accounts.ChangePassword(admin, &mciasv1.ChangePasswordRequest{Account: "kim", CurrentPassword: adminPassword, NewPassword: "kim-new-password"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ChangePassword of another account: %v; want PermissionDenied", err)
	}
	if _, err := h.accounts.ChangePassword(kimCtx, &mciasv1.ChangePasswordRequest{Account: kim.GetId(), CurrentPassword: "kim-reset-password", NewPassword: "kim-new-password"}); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	h.login(t, "kim", "kim-new-password")

	list, err := h.accounts.ListAccounts(admin, &mciasv1.ListAccountsRequest{})
	if err != nil || len(list.GetAccounts()) != 2 {
		t.Fatalf("ListAccounts = %v, %v", list, err)
	}
	if _, err := h.accounts.DeleteAccount(admin, &mciasv1.DeleteAccountRequest{Account: "kim"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.accounts.GetAccount(admin, &mciasv1.GetAccountRequest{Account: kim.GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetAccount after delete: %v; want NotFound", err)
	}
	if v, _ := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: kimTok}); v.GetValid() {
		t.Fatal("a deleted account's token still validates")
	}
	if _, err := h.accounts.DeleteAccount(admin, &mciasv1.DeleteAccountRequest{Account: adminUser}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("deleting the last admin: %v; want AlreadyExists (409)", err)
	}
}

func TestGRPCTOTP(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "lena")
	lenaTok := h.login(t, "lena", userPassword)
	lena := withToken(ctx, lenaTok)

	enr, err := h.accounts.EnrollTOTP(lena, &mciasv1.EnrollTOTPRequest{Account: "lena"})
	if err != nil || enr.GetSecret() == "" || !strings.HasPrefix(enr.GetUri(), "otpauth://totp/") {
		t.Fatalf("EnrollTOTP = %v, %v", enr, err)
	}
	if _, err := h.accounts.ConfirmTOTP(lena, &mciasv1.ConfirmTOTPRequest{Account: "lena", Code: "12345"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ConfirmTOTP with a malformed code: %v; want InvalidArgument", err)
	}
	conf, err := h.accounts.ConfirmTOTP(lena, &mciasv1.ConfirmTOTPRequest{Account: "lena", Code: code(t, enr.GetSecret(), time.Now())})
	if err != nil || len(conf.GetRecoveryCodes()) != identity.RecoveryCodeCount || conf.GetToken() == "" || conf.GetExpiresAt() == nil {
		t.Fatalf("ConfirmTOTP = %v, %v", conf, err)
	}
	// Turning TOTP on ended the session that did it; its answer is the
	// way on.
	if v, _ := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: lenaTok}); v.GetValid() {
		t.Fatal("the token that turned TOTP on still validates")
	}
	lena = withToken(ctx, conf.GetToken())
	if _, err := h.accounts.EnrollTOTP(lena, &mciasv1.EnrollTOTPRequest{Account: "lena"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("EnrollTOTP while enabled: %v; want AlreadyExists", err)
	}

	_, err = h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "lena", Password: userPassword})
	if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "totp code required" {
		t.Fatalf("Login without a code: %v; want Unauthenticated totp code required", err)
	}
	next := code(t, enr.GetSecret(), time.Now().Add(30*time.Second))
	if _, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "lena", Password: userPassword, TotpCode: next}); err != nil {
		t.Fatalf("Login with a code: %v", err)
	}
	if _, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "lena", Password: userPassword, TotpCode: next}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Login replaying a code: %v; want Unauthenticated", err)
	}

	// The account itself needs a code to turn TOTP off; a recovery code
	// does.
	if _, err := h.accounts.DisableTOTP(lena, &mciasv1.DisableTOTPRequest{Account: "lena"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("DisableTOTP without a code: %v; want Unauthenticated", err)
	}
	off, err := h.accounts.DisableTOTP(lena, &mciasv1.DisableTOTPRequest{Account: "lena", Code: conf.GetRecoveryCodes()[3]})
	if err != nil || off.GetToken() == "" {
		t.Fatalf("DisableTOTP with a recovery code: %v, %v", off, err)
	}
	if v, _ := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: conf.GetToken()}); v.GetValid() {
		t.Fatal("the token that turned TOTP off still validates")
	}
	if v, _ := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: off.GetToken()}); !v.GetValid() {
		t.Fatal("the token DisableTOTP answered with does not validate")
	}
	if _, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "lena", Password: userPassword}); err != nil {
		t.Fatalf("Login after DisableTOTP: %v", err)
	}
}
