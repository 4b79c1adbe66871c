package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/policy"
)

// restClass is the gRPC code of an HTTP status (PLATFORM.md §4).
func restClass(code int) codes.Code {
	if code < 300 {
		return codes.OK
	}
	return apierr.KindOfHTTP(code).GRPCCode()
}

// TestErrorsAgree sends the same bad requests through both faces of the
// API: REST (generated from the proto) and gRPC must answer every domain
// error with the same kind — the status classes pair up as PLATFORM.md §4
// says — and the same text.
func TestErrorsAgree(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()
	adminTok := h.login(t, adminUser, adminPassword)
	admin := withToken(ctx, adminTok)
	h.createUser(t, adminTok, "pat")
	h.createUser(t, adminTok, "quinn")
	h.createUser(t, adminTok, "ruth")
	patTok := h.login(t, "pat", userPassword)
	pat := withToken(ctx, patTok)
	h.call(t, http.MethodPost, "/v1/policies", adminTok, denyRule, http.StatusCreated, nil)
	h.call(t, http.MethodPost, "/v1/accounts", adminTok,
		identity.CreateAccountRequest{Username: "sys-err", AccountType: "system"}, http.StatusCreated, nil)
	loggedOut := h.login(t, "ruth", userPassword)
	h.call(t, http.MethodPost, "/v1/auth/logout", loggedOut, nil, http.StatusNoContent, nil)

	type restReq struct {
		method, path, token string
		body                any
	}
	cases := []struct {
		name string
		rest restReq
		grpc func() error
		want codes.Code
	}{
		{
			name: "create: bad username",
			rest: restReq{http.MethodPost, "/v1/accounts", adminTok, identity.CreateAccountRequest{Username: "Bad Name", AccountType: "human", Password: userPassword}},
			grpc: func() error {
				_, err := h.accounts.CreateAccount(admin, &mciasv1.CreateAccountRequest{Username: "Bad Name", AccountType: "human", Password: userPassword})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "create: unknown role",
			rest: restReq{http.MethodPost, "/v1/accounts", adminTok, identity.CreateAccountRequest{Username: "sam", AccountType: "human", Password: userPassword, Roles: []string{"root"}}},
			grpc: func() error {
				_, err := h.accounts.CreateAccount(admin, &mciasv1.CreateAccountRequest{Username: "sam", AccountType: "human", Password: userPassword, Roles: []string{"root"}})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "create: duplicate",
			rest: restReq{http.MethodPost, "/v1/accounts", adminTok, identity.CreateAccountRequest{Username: "pat", AccountType: "human", Password: userPassword}},
			grpc: func() error {
				_, err := h.accounts.CreateAccount(admin, &mciasv1.CreateAccountRequest{Username: "pat", AccountType: "human", Password: userPassword})
				return err
			},
			want: codes.AlreadyExists,
		},
		{
			name: "create: not admin",
			rest: restReq{http.MethodPost, "/v1/accounts", patTok, identity.CreateAccountRequest{Username: "sam", AccountType: "human", Password: userPassword}},
			grpc: func() error {
				_, err := h.accounts.CreateAccount(pat, &mciasv1.CreateAccountRequest{Username: "sam", AccountType: "human", Password: userPassword})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "get: unknown account",
			rest: restReq{http.MethodGet, "/v1/accounts/no-such-account", adminTok, nil},
			grpc: func() error {
				_, err := h.accounts.GetAccount(admin, &mciasv1.GetAccountRequest{Account: "no-such-account"})
				return err
			},
			want: codes.NotFound,
		},
		{
			name: "get: another account as a user",
			rest: restReq{http.MethodGet, "/v1/accounts/quinn", patTok, nil},
			grpc: func() error {
				_, err := h.accounts.GetAccount(pat, &mciasv1.GetAccountRequest{Account: "quinn"})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "list: not admin",
			rest: restReq{http.MethodGet, "/v1/accounts", patTok, nil},
			grpc: func() error {
				_, err := h.accounts.ListAccounts(pat, &mciasv1.ListAccountsRequest{})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "no token",
			rest: restReq{http.MethodGet, "/v1/whoami", "", nil},
			grpc: func() error {
				_, err := h.auth.WhoAmI(ctx, &mciasv1.WhoAmIRequest{})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "logged-out token",
			rest: restReq{http.MethodGet, "/v1/whoami", loggedOut, nil},
			grpc: func() error {
				_, err := h.auth.WhoAmI(withToken(ctx, loggedOut), &mciasv1.WhoAmIRequest{})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "update: bad status",
			rest: restReq{http.MethodPatch, "/v1/accounts/quinn", adminTok, map[string]string{"status": "asleep"}},
			grpc: func() error {
				s := "asleep"
				_, err := h.accounts.UpdateAccount(admin, &mciasv1.UpdateAccountRequest{Account: "quinn", Status: &s})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "update: disable the last admin",
			rest: restReq{http.MethodPatch, "/v1/accounts/admin", adminTok, map[string]string{"status": "disabled"}},
			grpc: func() error {
				s := "disabled"
				_, err := h.accounts.UpdateAccount(admin, &mciasv1.UpdateAccountRequest{Account: adminUser, Status: &s})
				return err
			},
			want: codes.AlreadyExists,
		},
		{
			name: "set roles: system account",
			rest: restReq{http.MethodPut, "/v1/accounts/sys-err/roles", adminTok, map[string]any{"roles": []string{"user"}}},
			grpc: func() error {
				_, err := h.accounts.SetRoles(admin, &mciasv1.SetRolesRequest{Account: "sys-err", Roles: []string{"user"}})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "delete: unknown account",
			rest: restReq{http.MethodDelete, "/v1/accounts/no-such-account", adminTok, nil},
			grpc: func() error {
				_, err := h.accounts.DeleteAccount(admin, &mciasv1.DeleteAccountRequest{Account: "no-such-account"})
				return err
			},
			want: codes.NotFound,
		},
		{
			name: "system token: human account",
			rest: restReq{http.MethodPost, "/v1/accounts/quinn/token", adminTok, nil},
			grpc: func() error {
				_, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{Account: "quinn"})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "system token: ttl over the maximum",
			rest: restReq{http.MethodPost, "/v1/accounts/sys-err/token", adminTok, map[string]string{"ttl": "9000h"}},
			grpc: func() error {
				_, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{Account: "sys-err", Ttl: "9000h"})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "system token: negative ttl",
			rest: restReq{http.MethodPost, "/v1/accounts/sys-err/token", adminTok, map[string]string{"ttl": "-1h"}},
			grpc: func() error {
				_, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{Account: "sys-err", Ttl: "-1h"})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "system token: not admin",
			rest: restReq{http.MethodPost, "/v1/accounts/sys-err/token", patTok, nil},
			grpc: func() error {
				_, err := h.accounts.IssueSystemToken(pat, &mciasv1.IssueSystemTokenRequest{Account: "sys-err"})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "revoke: unknown jti",
			rest: restReq{http.MethodPost, "/v1/token/revoke", adminTok, map[string]string{"jti": "0123456789abcdef"}},
			grpc: func() error {
				_, err := h.auth.RevokeToken(admin, &mciasv1.RevokeTokenRequest{Jti: "0123456789abcdef"})
				return err
			},
			want: codes.NotFound,
		},
		{
			name: "revoke: another account's token",
			rest: restReq{http.MethodPost, "/v1/token/revoke", patTok, map[string]string{"jti": jtiOf(t, adminTok)}},
			grpc: func() error {
				_, err := h.auth.RevokeToken(pat, &mciasv1.RevokeTokenRequest{Jti: jtiOf(t, adminTok)})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "change password: wrong current",
			rest: restReq{http.MethodPost, "/v1/accounts/pat/password", patTok, map[string]string{"current_password": "wrong-password!", "new_password": "pat-new-password"}},
			grpc: func() error {
				_, err := h.accounts.ChangePassword(pat, &mciasv1.ChangePasswordRequest{Account: "pat", CurrentPassword: "wrong-password!", NewPassword: "pat-new-password"})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "change password: too short",
			rest: restReq{http.MethodPost, "/v1/accounts/pat/password", patTok, map[string]string{"current_password": userPassword, "new_password": "short"}},
			grpc: func() error {
				_, err := h.accounts.ChangePassword(pat, &mciasv1.ChangePasswordRequest{Account: "pat", CurrentPassword: userPassword, NewPassword: "short"})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "totp: enrol another account",
			rest: restReq{http.MethodPost, "/v1/accounts/quinn/totp", adminTok, nil},
			grpc: func() error {
				_, err := h.accounts.EnrollTOTP(admin, &mciasv1.EnrollTOTPRequest{Account: "quinn"})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "totp: confirm without enrolling",
			rest: restReq{http.MethodPost, "/v1/accounts/pat/totp/confirm", patTok, map[string]string{"code": "123456"}},
			grpc: func() error {
				_, err := h.accounts.ConfirmTOTP(pat, &mciasv1.ConfirmTOTPRequest{Account: "pat", Code: "123456"})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "policy: bad effect",
			rest: restReq{http.MethodPost, "/v1/policies", adminTok, policy.Rule{Effect: "maybe"}},
			grpc: func() error {
				_, err := h.policies.CreatePolicy(admin, &mciasv1.CreatePolicyRequest{Policy: &mciasv1.Policy{Effect: "maybe"}})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "policy: id 0",
			rest: restReq{http.MethodGet, "/v1/policies/0", adminTok, nil},
			grpc: func() error {
				_, err := h.policies.GetPolicy(admin, &mciasv1.GetPolicyRequest{Id: 0})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "policy: update unknown id",
			rest: restReq{http.MethodPut, "/v1/policies/999999", adminTok, denyRule},
			grpc: func() error {
				p := rulePB(denyRule)
				p.Id = 999999
				_, err := h.policies.UpdatePolicy(admin, &mciasv1.UpdatePolicyRequest{Policy: p})
				return err
			},
			want: codes.NotFound,
		},
		{
			name: "policy: delete unknown id",
			rest: restReq{http.MethodDelete, "/v1/policies/999999", adminTok, nil},
			grpc: func() error {
				_, err := h.policies.DeletePolicy(admin, &mciasv1.DeletePolicyRequest{Id: 999999})
				return err
			},
			want: codes.NotFound,
		},
		{
			name: "policy: not admin",
			rest: restReq{http.MethodGet, "/v1/policies", patTok, nil},
			grpc: func() error {
				_, err := h.policies.ListPolicies(pat, &mciasv1.ListPoliciesRequest{})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "keys: not admin",
			rest: restReq{http.MethodPost, "/v1/keys/rotate", patTok, nil},
			grpc: func() error {
				_, err := h.keys.RotateKey(pat, &mciasv1.RotateKeyRequest{})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "login: wrong password",
			rest: restReq{http.MethodPost, "/v1/auth/login", "", loginBody{Username: "quinn", Password: "wrong-password!"}},
			grpc: func() error {
				_, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "quinn", Password: "wrong-password!"})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "login: unknown user",
			rest: restReq{http.MethodPost, "/v1/auth/login", "", loginBody{Username: "nobody", Password: "wrong-password!"}},
			grpc: func() error {
				_, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "nobody", Password: "wrong-password!"})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "login: denied by policy",
			rest: restReq{http.MethodPost, "/v1/auth/login", "", loginBody{Username: "ruth", Password: userPassword, ServiceName: "mcat-deny"}},
			grpc: func() error {
				_, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "ruth", Password: userPassword, ServiceName: "mcat-deny"})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "login: bad service name",
			rest: restReq{http.MethodPost, "/v1/auth/login", "", loginBody{Username: "ruth", Password: userPassword, ServiceName: "Not A Name"}},
			grpc: func() error {
				_, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "ruth", Password: userPassword, ServiceName: "Not A Name"})
				return err
			},
			want: codes.InvalidArgument,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.rest(t, c.rest.method, c.rest.path, c.rest.token, c.rest.body)
			gerr := c.grpc()
			if got := restClass(code); got != c.want {
				t.Errorf("REST %s %s = %d %s; want the class of %v", c.rest.method, c.rest.path, code, body, c.want)
			}
			if got := status.Code(gerr); got != c.want {
				t.Errorf("gRPC: %v; want %v", gerr, c.want)
			}
			if code >= 400 {
				if msg, gmsg := errorOf(t, body), status.Convert(gerr).Message(); msg != gmsg {
					t.Errorf("messages differ: REST %q, gRPC %q", msg, gmsg)
				}
			}
		})
	}

	// Throttling is shared: failures through either API count for both,
	// and the refusal is the same for a real and an unknown account.
	for _, user := range []string{"ruth", "no-such-user"} {
		for i, viaGRPC := range []bool{false, true, false} {
			var got codes.Code
			if viaGRPC {
				_, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: user, Password: "wrong-password!"})
				got = status.Code(err)
			} else {
				code, _ := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: user, Password: "wrong-password!"})
				got = restClass(code)
			}
			if got != codes.Unauthenticated {
				t.Fatalf("%s failure %d: %v; want Unauthenticated", user, i+1, got)
			}
		}
		data, err := json.Marshal(loginBody{Username: user, Password: userPassword})
		if err != nil {
			t.Fatal(err)
		}
		resp, body := h.webCall(t, http.MethodPost, "/v1/auth/login", "", nil, nil, data)
		_, gerr := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: user, Password: userPassword})
		if restClass(resp.StatusCode) != codes.ResourceExhausted || status.Code(gerr) != codes.ResourceExhausted {
			t.Fatalf("%s throttled: REST %d %s, gRPC %v; want 429 and ResourceExhausted", user, resp.StatusCode, body, gerr)
		}
		if msg := errorOf(t, body); msg != status.Convert(gerr).Message() {
			t.Fatalf("throttle messages differ: REST %q, gRPC %q", msg, status.Convert(gerr).Message())
		}
		if ra := resp.Header.Get("Retry-After"); ra != "60" {
			t.Fatalf("%s throttled: Retry-After %q; want 60", user, ra)
		}
		if st := apierr.FromGRPC(gerr); st.RetryAfter != identity.RetryAfter {
			t.Fatalf("%s throttled over gRPC: retry after %v; want %v", user, st.RetryAfter, identity.RetryAfter)
		}
	}
}

// TestJWKSMatchesGetJWKS: the hand-written JWKS document and the GetJWKS
// RPC publish the same keys, before and after a rotation.
func TestJWKSMatchesGetJWKS(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()
	admin := withToken(ctx, h.login(t, adminUser, adminPassword))
	for round := range 2 {
		var rj struct {
			Keys []map[string]string `json:"keys"`
		}
		h.call(t, http.MethodGet, "/.well-known/jwks.json", "", nil, http.StatusOK, &rj)
		gj, err := h.keys.GetJWKS(ctx, &mciasv1.GetJWKSRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rj.Keys) != round+1 || len(gj.GetKeys()) != round+1 {
			t.Fatalf("JWKS: REST %d keys, gRPC %d; want %d", len(rj.Keys), len(gj.GetKeys()), round+1)
		}
		for i, k := range rj.Keys {
			pk := gj.GetKeys()[i]
			if k["kid"] != pk.GetKid() || k["x"] != pk.GetX() || k["kty"] != pk.GetKty() || k["crv"] != pk.GetCrv() ||
				k["use"] != pk.GetUse() || k["alg"] != pk.GetAlg() || len(k) != 6 {
				t.Fatalf("JWKS disagree: REST %v gRPC %v", k, pk)
			}
		}
		if _, err := h.keys.RotateKey(admin, &mciasv1.RotateKeyRequest{}); err != nil {
			t.Fatal(err)
		}
	}
}

// rulePB is a rule as the gRPC API takes it.
func rulePB(r policy.Rule) *mciasv1.Policy {
	return &mciasv1.Policy{
		Id: r.ID, Priority: int32(r.Priority), Effect: r.Effect, Roles: r.Roles, AccountTypes: r.AccountTypes, //nolint:gosec // test priorities are small
		Actions: r.Actions, ServiceNames: r.ServiceNames, RequiredTags: r.RequiredTags, Description: r.Description,
	}
}
