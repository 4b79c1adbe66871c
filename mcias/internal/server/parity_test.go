package server_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/policy"
)

// The parity tests drive the same operations through REST and gRPC and
// check that the two APIs agree on results and on error classes.

// restClass is the gRPC code PLATFORM.md §4 pairs with an HTTP status.
func restClass(code int) codes.Code {
	switch code {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return codes.OK
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.AlreadyExists
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	}
	return codes.Unknown
}

func accountFromPB(a *mciasv1.Account) identity.Account {
	roles := a.GetRoles()
	if roles == nil {
		roles = []string{}
	}
	return identity.Account{
		ID: a.GetId(), Username: a.GetUsername(), AccountType: a.GetAccountType(), Status: a.GetStatus(),
		Roles: roles, TOTPEnabled: a.GetTotpEnabled(),
		CreatedAt: a.GetCreatedAt().AsTime(), UpdatedAt: a.GetUpdatedAt().AsTime(),
	}
}

func sameAccount(t *testing.T, what string, rest identity.Account, pb *mciasv1.Account) {
	t.Helper()
	g := accountFromPB(pb)
	if rest.Roles == nil {
		rest.Roles = []string{}
	}
	if rest.ID != g.ID || rest.Username != g.Username || rest.AccountType != g.AccountType || rest.Status != g.Status ||
		!slices.Equal(rest.Roles, g.Roles) || rest.TOTPEnabled != g.TOTPEnabled ||
		!rest.CreatedAt.Equal(g.CreatedAt) || !rest.UpdatedAt.Equal(g.UpdatedAt) {
		t.Fatalf("%s: REST and gRPC disagree:\nREST %+v\ngRPC %+v", what, rest, g)
	}
}

func ruleFromPB(p *mciasv1.Policy) policy.Rule {
	l := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return policy.Rule{
		ID: p.GetId(), Priority: int(p.GetPriority()), Effect: p.GetEffect(), Roles: l(p.GetRoles()),
		AccountTypes: l(p.GetAccountTypes()), Actions: l(p.GetActions()), ServiceNames: l(p.GetServiceNames()),
		RequiredTags: l(p.GetRequiredTags()), Description: p.GetDescription(),
	}
}

func rulePB(r policy.Rule) *mciasv1.Policy {
	return &mciasv1.Policy{
		Id: r.ID, Priority: int32(r.Priority), Effect: r.Effect, Roles: r.Roles, AccountTypes: r.AccountTypes, //nolint:gosec // test priorities are small
		Actions: r.Actions, ServiceNames: r.ServiceNames, RequiredTags: r.RequiredTags, Description: r.Description,
	}
}

func sameRule(t *testing.T, what string, rest policy.Rule, pb *mciasv1.Policy) {
	t.Helper()
	g := ruleFromPB(pb)
	if rest.ID != g.ID || rest.Priority != g.Priority || rest.Effect != g.Effect || rest.Description != g.Description ||
		!slices.Equal(rest.Roles, g.Roles) || !slices.Equal(rest.AccountTypes, g.AccountTypes) ||
		!slices.Equal(rest.Actions, g.Actions) || !slices.Equal(rest.ServiceNames, g.ServiceNames) ||
		!slices.Equal(rest.RequiredTags, g.RequiredTags) {
		t.Fatalf("%s: REST and gRPC disagree:\nREST %+v\ngRPC %+v", what, rest, g)
	}
}

func sameValidation(t *testing.T, what string, rest validation, pb interface {
	GetSubject() string
	GetUsername() string
	GetAccountType() string
	GetRoles() []string
}, expires time.Time,
) {
	t.Helper()
	if rest.Subject != pb.GetSubject() || rest.Username != pb.GetUsername() || rest.AccountType != pb.GetAccountType() ||
		len(rest.Roles) != len(pb.GetRoles()) || (len(rest.Roles) > 0 && !slices.Equal(rest.Roles, pb.GetRoles())) ||
		!rest.ExpiresAt.Equal(expires) {
		t.Fatalf("%s: REST and gRPC disagree:\nREST %+v\ngRPC %v (expires %v)", what, rest, pb, expires)
	}
}

func TestParityAccounts(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	admin := withToken(t.Context(), adminTok)

	var fromREST identity.Account
	h.call(t, http.MethodPost, "/v1/accounts", adminTok, identity.CreateAccountRequest{
		Username: "rest-made", AccountType: "human", Password: userPassword, Roles: []string{"user", "guest"},
	}, http.StatusCreated, &fromREST)
	created, err := h.accounts.CreateAccount(admin, &mciasv1.CreateAccountRequest{
		Username: "grpc-made", AccountType: "human", Password: userPassword, Roles: []string{"user", "guest"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fromGRPC := accountFromPB(created.GetAccount())
	if fromREST.AccountType != fromGRPC.AccountType || fromREST.Status != fromGRPC.Status ||
		!slices.Equal(fromREST.Roles, fromGRPC.Roles) || fromREST.TOTPEnabled != fromGRPC.TOTPEnabled {
		t.Fatalf("the same creation differs:\nREST %+v\ngRPC %+v", fromREST, fromGRPC)
	}

	// Each API reads what the other wrote, by username and by ID.
	get := func(ref string) (identity.Account, *mciasv1.Account) {
		t.Helper()
		var r identity.Account
		h.call(t, http.MethodGet, "/v1/accounts/"+ref, adminTok, nil, http.StatusOK, &r)
		g, err := h.accounts.GetAccount(admin, &mciasv1.GetAccountRequest{Account: ref})
		if err != nil {
			t.Fatalf("GetAccount(%s): %v", ref, err)
		}
		sameAccount(t, "get "+ref, r, g.GetAccount())
		return r, g.GetAccount()
	}
	get("rest-made")
	_, g := get(fromREST.ID)
	sameAccount(t, "REST create vs gRPC get", fromREST, g)
	r, _ := get(fromGRPC.ID)
	sameAccount(t, "gRPC create vs REST get", r, created.GetAccount())

	listBoth := func() {
		t.Helper()
		var rl struct {
			Accounts []identity.Account `json:"accounts"`
		}
		h.call(t, http.MethodGet, "/v1/accounts", adminTok, nil, http.StatusOK, &rl)
		gl, err := h.accounts.ListAccounts(admin, &mciasv1.ListAccountsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rl.Accounts) != len(gl.GetAccounts()) || len(rl.Accounts) != 3 {
			t.Fatalf("REST lists %d accounts, gRPC %d; want 3", len(rl.Accounts), len(gl.GetAccounts()))
		}
		for i := range rl.Accounts {
			sameAccount(t, "list", rl.Accounts[i], gl.GetAccounts()[i])
		}
	}
	listBoth()

	// Set roles through one API, read through the other.
	var rolesREST identity.Account
	h.call(t, http.MethodPut, "/v1/accounts/grpc-made/roles", adminTok, map[string]any{"roles": []string{"admin"}}, http.StatusOK, &rolesREST)
	_, g = get("grpc-made")
	sameAccount(t, "REST set roles", rolesREST, g)
	rolesGRPC, err := h.accounts.SetRoles(admin, &mciasv1.SetRolesRequest{Account: "rest-made", Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ = get("rest-made")
	sameAccount(t, "gRPC set roles", r, rolesGRPC.GetAccount())
	if !slices.Equal(r.Roles, []string{"admin"}) || !slices.Equal(rolesREST.Roles, []string{"admin"}) {
		t.Fatalf("roles after set: %v and %v", r.Roles, rolesREST.Roles)
	}

	// Update status the same way.
	var disabledREST identity.Account
	h.call(t, http.MethodPatch, "/v1/accounts/rest-made", adminTok, map[string]string{"status": "disabled"}, http.StatusOK, &disabledREST)
	_, g = get("rest-made")
	sameAccount(t, "REST disable", disabledREST, g)
	disabledGRPC, err := h.accounts.UpdateAccount(admin, &mciasv1.UpdateAccountRequest{Account: "grpc-made", Status: proto.String("disabled")})
	if err != nil {
		t.Fatal(err)
	}
	r, _ = get("grpc-made")
	sameAccount(t, "gRPC disable", r, disabledGRPC.GetAccount())
	if r.Status != "disabled" || disabledREST.Status != "disabled" {
		t.Fatalf("status after disable: %q and %q", r.Status, disabledREST.Status)
	}
	listBoth()

	// Tokens listed alike.
	var tl struct {
		Tokens []identity.TokenInfo `json:"tokens"`
	}
	h.call(t, http.MethodGet, "/v1/accounts/admin/tokens", adminTok, nil, http.StatusOK, &tl)
	gt, err := h.accounts.ListTokens(admin, &mciasv1.ListTokensRequest{Account: adminUser})
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Tokens) != 1 || len(gt.GetTokens()) != 1 {
		t.Fatalf("tokens: REST %d, gRPC %d; want 1", len(tl.Tokens), len(gt.GetTokens()))
	}
	rt, pt := tl.Tokens[0], gt.GetTokens()[0]
	if rt.JTI != pt.GetJti() || rt.Kind != pt.GetKind() || !rt.IssuedAt.Equal(pt.GetIssuedAt().AsTime()) ||
		!rt.ExpiresAt.Equal(pt.GetExpiresAt().AsTime()) || (rt.RevokedAt != nil) != (pt.GetRevokedAt() != nil) {
		t.Fatalf("token lists disagree: REST %+v gRPC %v", rt, pt)
	}

	// Whoami alike.
	var who validation
	h.call(t, http.MethodGet, "/v1/whoami", adminTok, nil, http.StatusOK, &who)
	gw, err := h.auth.WhoAmI(admin, &mciasv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sameValidation(t, "whoami", who, gw, gw.GetExpiresAt().AsTime())
}

func TestParityPolicies(t *testing.T) {
	h := start(t, "")
	adminTok := h.login(t, adminUser, adminPassword)
	admin := withToken(t.Context(), adminTok)
	rule := policy.Rule{
		Priority: 50, Effect: policy.Allow, Roles: []string{"user"}, AccountTypes: []string{"human"},
		Actions: []string{policy.ActionLogin}, ServiceNames: []string{"mcr"}, RequiredTags: []string{"env:prod"},
		Description: "parity",
	}

	var fromREST policy.Rule
	h.call(t, http.MethodPost, "/v1/policies", adminTok, rule, http.StatusCreated, &fromREST)
	created, err := h.policies.CreatePolicy(admin, &mciasv1.CreatePolicyRequest{Policy: rulePB(rule)})
	if err != nil {
		t.Fatal(err)
	}
	fromGRPC := ruleFromPB(created.GetPolicy())
	if fromREST.ID == fromGRPC.ID || fromREST.ID == 0 || fromGRPC.ID == 0 {
		t.Fatalf("ids %d and %d", fromREST.ID, fromGRPC.ID)
	}
	withID := fromREST
	withID.ID = fromGRPC.ID
	sameRule(t, "the same creation", withID, created.GetPolicy())

	getBoth := func(id int64) policy.Rule {
		t.Helper()
		var r policy.Rule
		h.call(t, http.MethodGet, "/v1/policies/"+strconv.FormatInt(id, 10), adminTok, nil, http.StatusOK, &r)
		g, err := h.policies.GetPolicy(admin, &mciasv1.GetPolicyRequest{Id: id})
		if err != nil {
			t.Fatalf("GetPolicy(%d): %v", id, err)
		}
		sameRule(t, "get", r, g.GetPolicy())
		return r
	}
	getBoth(fromREST.ID)
	getBoth(fromGRPC.ID)

	// An empty list is "match anything" through both APIs.
	changed := rule
	changed.Effect, changed.Priority, changed.ServiceNames, changed.Description = policy.Deny, 60, nil, "changed"
	up, err := h.policies.UpdatePolicy(admin, &mciasv1.UpdatePolicyRequest{Policy: func() *mciasv1.Policy {
		p := rulePB(changed)
		p.Id = fromREST.ID
		return p
	}()})
	if err != nil {
		t.Fatal(err)
	}
	sameRule(t, "gRPC update", getBoth(fromREST.ID), up.GetPolicy())
	var upREST policy.Rule
	h.call(t, http.MethodPut, "/v1/policies/"+strconv.FormatInt(fromGRPC.ID, 10), adminTok, changed, http.StatusOK, &upREST)
	g, err := h.policies.GetPolicy(admin, &mciasv1.GetPolicyRequest{Id: fromGRPC.ID})
	if err != nil {
		t.Fatal(err)
	}
	sameRule(t, "REST update", upREST, g.GetPolicy())
	if upREST.Effect != policy.Deny || len(upREST.ServiceNames) != 0 || ruleFromPB(up.GetPolicy()).Effect != policy.Deny {
		t.Fatalf("updates did not apply: %+v / %v", upREST, up.GetPolicy())
	}

	var rl struct {
		Policies []policy.Rule `json:"policies"`
	}
	h.call(t, http.MethodGet, "/v1/policies", adminTok, nil, http.StatusOK, &rl)
	gl, err := h.policies.ListPolicies(admin, &mciasv1.ListPoliciesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rl.Policies) != 3 || len(gl.GetPolicies()) != 3 {
		t.Fatalf("REST lists %d rules, gRPC %d; want 3 (default + 2)", len(rl.Policies), len(gl.GetPolicies()))
	}
	for i := range rl.Policies {
		sameRule(t, "list", rl.Policies[i], gl.GetPolicies()[i])
	}

	if _, err := h.policies.DeletePolicy(admin, &mciasv1.DeletePolicyRequest{Id: fromREST.ID}); err != nil {
		t.Fatal(err)
	}
	h.call(t, http.MethodDelete, "/v1/policies/"+strconv.FormatInt(fromGRPC.ID, 10), adminTok, nil, http.StatusNoContent, nil)
	for _, id := range []int64{fromREST.ID, fromGRPC.ID} {
		h.call(t, http.MethodGet, "/v1/policies/"+strconv.FormatInt(id, 10), adminTok, nil, http.StatusNotFound, nil)
		if _, err := h.policies.GetPolicy(admin, &mciasv1.GetPolicyRequest{Id: id}); status.Code(err) != codes.NotFound {
			t.Fatalf("GetPolicy(%d) after delete: %v; want NotFound", id, err)
		}
	}
}

func TestParityTokensAndKeys(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()
	adminTok := h.login(t, adminUser, adminPassword)
	admin := withToken(ctx, adminTok)
	h.call(t, http.MethodPost, "/v1/accounts", adminTok,
		identity.CreateAccountRequest{Username: "sys-parity", AccountType: "system"}, http.StatusCreated, nil)

	var fromREST issued
	h.call(t, http.MethodPost, "/v1/accounts/sys-parity/token", adminTok, map[string]string{"ttl": "1h"}, http.StatusOK, &fromREST)
	fromGRPC, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{Account: "sys-parity", Ttl: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if d := fromGRPC.GetExpiresAt().AsTime().Sub(fromREST.ExpiresAt); d < 0 || d > 5*time.Second {
		t.Fatalf("ttl 1h: REST expires %v, gRPC %v", fromREST.ExpiresAt, fromGRPC.GetExpiresAt().AsTime())
	}
	for _, tok := range []string{fromREST.Token, fromGRPC.GetToken(), adminTok} {
		r := h.validate(t, tok)
		g, err := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: tok})
		if err != nil || !r.Valid || !g.GetValid() {
			t.Fatalf("validate: REST %+v, gRPC %v, %v", r, g, err)
		}
		sameValidation(t, "validate", r, g, g.GetExpiresAt().AsTime())
	}
	if r := h.validate(t, fromREST.Token); r.AccountType != "system" || len(r.Roles) != 0 {
		t.Fatalf("system token validates as %+v", r)
	}

	keysBoth := func(want int) string {
		t.Helper()
		var rk struct {
			Keys []identity.KeyInfo `json:"keys"`
		}
		h.call(t, http.MethodGet, "/v1/keys", adminTok, nil, http.StatusOK, &rk)
		gk, err := h.keys.ListKeys(admin, &mciasv1.ListKeysRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rk.Keys) != want || len(gk.GetKeys()) != want {
			t.Fatalf("keys: REST %d, gRPC %d; want %d", len(rk.Keys), len(gk.GetKeys()), want)
		}
		active := ""
		for i, k := range rk.Keys {
			pk := gk.GetKeys()[i]
			if k.ID != pk.GetKid() || k.Active != pk.GetActive() || !k.CreatedAt.Equal(pk.GetCreatedAt().AsTime()) {
				t.Fatalf("keys disagree: REST %+v gRPC %v", k, pk)
			}
			if k.Active {
				active = k.ID
			}
		}

		var rj struct {
			Keys []map[string]string `json:"keys"`
		}
		h.call(t, http.MethodGet, "/.well-known/jwks.json", "", nil, http.StatusOK, &rj)
		gj, err := h.keys.GetJWKS(ctx, &mciasv1.GetJWKSRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rj.Keys) != want || len(gj.GetKeys()) != want {
			t.Fatalf("JWKS: REST %d, gRPC %d; want %d", len(rj.Keys), len(gj.GetKeys()), want)
		}
		for i, k := range rj.Keys {
			pk := gj.GetKeys()[i]
			if k["kid"] != pk.GetKid() || k["x"] != pk.GetX() || k["kty"] != pk.GetKty() || k["crv"] != pk.GetCrv() ||
				k["use"] != pk.GetUse() || k["alg"] != pk.GetAlg() || len(k) != 6 {
				t.Fatalf("JWKS disagree: REST %v gRPC %v", k, pk)
			}
		}
		return active
	}
	first := keysBoth(1)

	rot, err := h.keys.RotateKey(admin, &mciasv1.RotateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if active := keysBoth(2); active != rot.GetKey().GetKid() || active == first {
		t.Fatalf("after gRPC rotate the active key is %s; want %s", active, rot.GetKey().GetKid())
	}
	var rotREST identity.KeyInfo
	h.call(t, http.MethodPost, "/v1/keys/rotate", adminTok, nil, http.StatusOK, &rotREST)
	if active := keysBoth(3); active != rotREST.ID {
		t.Fatalf("after REST rotate the active key is %s; want %s", active, rotREST.ID)
	}
	// Tokens from before both rotations still validate through both.
	for _, tok := range []string{fromREST.Token, fromGRPC.GetToken()} {
		g, err := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: tok})
		if !h.validate(t, tok).Valid || err != nil || !g.GetValid() {
			t.Fatal("a token signed before rotation stopped validating")
		}
	}
}

// TestParityErrors sends the same bad requests through both APIs: the
// classes must pair up as PLATFORM.md §4 says, and where both messages come
// from the domain, they must be the same text.
func TestParityErrors(t *testing.T) {
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
		// transportMsg marks errors whose text each transport writes itself.
		transportMsg bool
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
				_, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{Account: "sys-err", Ttl: durationpb.New(9000 * time.Hour)})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "system token: negative ttl",
			rest: restReq{http.MethodPost, "/v1/accounts/sys-err/token", adminTok, map[string]string{"ttl": "-1h"}},
			grpc: func() error {
				_, err := h.accounts.IssueSystemToken(admin, &mciasv1.IssueSystemTokenRequest{Account: "sys-err", Ttl: durationpb.New(-time.Hour)})
				return err
			},
			want:         codes.InvalidArgument,
			transportMsg: true,
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
			if !c.transportMsg && code >= 400 {
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
		code, body := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: user, Password: userPassword})
		_, gerr := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: user, Password: userPassword})
		if restClass(code) != codes.ResourceExhausted || status.Code(gerr) != codes.ResourceExhausted {
			t.Fatalf("%s throttled: REST %d %s, gRPC %v; want 429 and ResourceExhausted", user, code, body, gerr)
		}
		if msg := errorOf(t, body); msg != status.Convert(gerr).Message() {
			t.Fatalf("throttle messages differ: REST %q, gRPC %q", msg, status.Convert(gerr).Message())
		}
	}
}
