package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/health"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// methodMaps classifies every MCIAS RPC. Only the snapshot is admin-only at
// the interceptor: identity.Service decides admin and self rules for
// everything else, for REST and gRPC alike, so the rule lives in one place.
func methodMaps() grpcserver.MethodMaps {
	set := func(names ...string) map[string]bool {
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	return grpcserver.MethodMaps{
		Public: set(
			mciasv1.AuthService_Login_FullMethodName,
			mciasv1.AuthService_ValidateToken_FullMethodName,
			mciasv1.KeyService_GetJWKS_FullMethodName,
			mciasv1.SSOService_ExchangeCode_FullMethodName,
		),
		AuthRequired: set(
			mciasv1.AuthService_Renew_FullMethodName,
			mciasv1.AuthService_Logout_FullMethodName,
			mciasv1.AuthService_RevokeToken_FullMethodName,
			mciasv1.AuthService_WhoAmI_FullMethodName,
			mciasv1.AccountService_ListAccounts_FullMethodName,
			mciasv1.AccountService_CreateAccount_FullMethodName,
			mciasv1.AccountService_GetAccount_FullMethodName,
			mciasv1.AccountService_UpdateAccount_FullMethodName,
			mciasv1.AccountService_DeleteAccount_FullMethodName,
			mciasv1.AccountService_SetRoles_FullMethodName,
			mciasv1.AccountService_ChangePassword_FullMethodName,
			mciasv1.AccountService_IssueSystemToken_FullMethodName,
			mciasv1.AccountService_ListTokens_FullMethodName,
			mciasv1.AccountService_EnrollTOTP_FullMethodName,
			mciasv1.AccountService_ConfirmTOTP_FullMethodName,
			mciasv1.AccountService_DisableTOTP_FullMethodName,
			mciasv1.PolicyService_ListPolicies_FullMethodName,
			mciasv1.PolicyService_CreatePolicy_FullMethodName,
			mciasv1.PolicyService_GetPolicy_FullMethodName,
			mciasv1.PolicyService_UpdatePolicy_FullMethodName,
			mciasv1.PolicyService_DeletePolicy_FullMethodName,
			mciasv1.KeyService_ListKeys_FullMethodName,
			mciasv1.KeyService_RotateKey_FullMethodName,
			mciasv1.PasskeyService_ListPasskeys_FullMethodName,
			mciasv1.PasskeyService_RenamePasskey_FullMethodName,
			mciasv1.PasskeyService_DeletePasskey_FullMethodName,
		),
		AdminRequired: set(snapshot.FullMethod),
	}
}

// NewGRPC builds the MCIAS gRPC server: the four mcias.v1 services, the
// platform snapshot service and health, behind the grpcserver interceptor
// with svc as the token validator.
func NewGRPC(cfg *Config, svc *identity.Service, st *store.Store, check health.Checker, logger *slog.Logger) (*grpcserver.Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv, err := grpcserver.New(grpcserver.FromConfig(cfg.Server, grpcserver.Options{
		Service:   ServiceName,
		Validator: svc,
		Health:    check,
		Logger:    logger,
		Maps:      methodMaps(),
	}))
	if err != nil {
		return nil, err
	}
	h := grpcHandlers{svc: svc, logger: logger}
	g := srv.GRPC()
	mciasv1.RegisterAuthServiceServer(g, authGRPC{grpcHandlers: h})
	mciasv1.RegisterAccountServiceServer(g, accountGRPC{grpcHandlers: h})
	mciasv1.RegisterPolicyServiceServer(g, policyGRPC{grpcHandlers: h})
	mciasv1.RegisterKeyServiceServer(g, keyGRPC{grpcHandlers: h})
	registerSSO(g, cfg, h)
	registerPasskeys(g, h)
	snapshot.Register(g, snapshot.NewServer(st.DB(), "", ServiceName))
	return srv, nil
}

// grpcHandlers is what every service implementation shares.
type grpcHandlers struct {
	svc    *identity.Service
	logger *slog.Logger
}

// fail maps a domain error to a gRPC status (see grpcStatus).
func (h grpcHandlers) fail(err error) error { return grpcStatus(h.logger, err) }

// caller is the identity the interceptor put in the context.
func (h grpcHandlers) caller(ctx context.Context) (*auth.Identity, error) {
	id, ok := auth.IdentityFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authentication required")
	}
	return id, nil
}

// account resolves a request's account reference (ID or username) exactly
// as the REST {id} path parameter is resolved.
func (h grpcHandlers) account(ctx context.Context, c *auth.Identity, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%w: account is required (an account ID or username)", identity.ErrInvalid)
	}
	return resolveAccount(ctx, h.svc, c, ref)
}

func accountPB(a identity.Account) *mciasv1.Account {
	return &mciasv1.Account{
		Id: a.ID, Username: a.Username, AccountType: a.AccountType, Status: a.Status, Roles: a.Roles,
		TotpEnabled: a.TOTPEnabled, CreatedAt: timestamppb.New(a.CreatedAt), UpdatedAt: timestamppb.New(a.UpdatedAt),
	}
}

func policyPB(r policy.Rule) *mciasv1.Policy {
	return &mciasv1.Policy{
		Id: r.ID, Priority: int32(r.Priority), //nolint:gosec // Rule.Validate bounds stored priorities to 0..1000000
		Effect: r.Effect, Roles: r.Roles, AccountTypes: r.AccountTypes, Actions: r.Actions,
		ServiceNames: r.ServiceNames, RequiredTags: r.RequiredTags, Description: r.Description,
	}
}

func ruleFrom(p *mciasv1.Policy) policy.Rule {
	if p == nil {
		return policy.Rule{}
	}
	return policy.Rule{
		ID: p.GetId(), Priority: int(p.GetPriority()), Effect: p.GetEffect(), Roles: p.GetRoles(),
		AccountTypes: p.GetAccountTypes(), Actions: p.GetActions(), ServiceNames: p.GetServiceNames(),
		RequiredTags: p.GetRequiredTags(), Description: p.GetDescription(),
	}
}

// grpcPolicyID checks a rule id the way the REST path parameter is checked.
func grpcPolicyID(id int64) (int64, error) {
	if id <= 0 {
		return 0, fmt.Errorf("%w: policy id must be a positive integer", identity.ErrInvalid)
	}
	return id, nil
}

// --- AuthService ---

// authGRPC implements mciasv1.AuthServiceServer.
type authGRPC struct {
	// The Unsafe marker (a nil interface, as in mcdsl/snapshot) instead of
	// the Unimplemented struct: a new RPC is a compile error here, not an
	// Unimplemented answer at run time.
	mciasv1.UnsafeAuthServiceServer
	grpcHandlers
}

var _ mciasv1.AuthServiceServer = authGRPC{}

// Login implements AuthService.Login; the peer address feeds the per-IP
// throttle, as the TCP remote address does for REST.
func (h authGRPC) Login(ctx context.Context, req *mciasv1.LoginRequest) (*mciasv1.LoginResponse, error) {
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	iss, err := h.svc.Login(ctx, identity.LoginRequest{
		Username: req.GetUsername(), Password: req.GetPassword(), TOTPCode: req.GetTotpCode(),
		ServiceName: req.GetServiceName(), Tags: req.GetTags(), RemoteIP: remote,
	})
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.LoginResponse{Token: iss.Token, ExpiresAt: timestamppb.New(iss.ExpiresAt)}, nil
}

// Renew implements AuthService.Renew for the token the call carries.
func (h authGRPC) Renew(ctx context.Context, _ *mciasv1.RenewRequest) (*mciasv1.RenewResponse, error) {
	tok, _ := auth.TokenFromGRPC(ctx)
	iss, err := h.svc.Renew(ctx, tok)
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.RenewResponse{Token: iss.Token, ExpiresAt: timestamppb.New(iss.ExpiresAt)}, nil
}

// Logout implements AuthService.Logout for the token the call carries.
func (h authGRPC) Logout(ctx context.Context, _ *mciasv1.LogoutRequest) (*mciasv1.LogoutResponse, error) {
	tok, _ := auth.TokenFromGRPC(ctx)
	if err := h.svc.Logout(ctx, tok); err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.LogoutResponse{}, nil
}

// ValidateToken implements AuthService.ValidateToken: an invalid token is
// an answer, not an error.
func (h authGRPC) ValidateToken(ctx context.Context, req *mciasv1.ValidateTokenRequest) (*mciasv1.ValidateTokenResponse, error) {
	id, err := h.svc.ValidateToken(ctx, req.GetToken())
	if errors.Is(err, identity.ErrInvalidToken) {
		return &mciasv1.ValidateTokenResponse{Valid: false}, nil
	}
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.ValidateTokenResponse{
		Valid: true, Subject: id.Subject, Username: id.Username, AccountType: id.AccountType,
		Roles: id.Roles, ExpiresAt: timestamppb.New(id.ExpiresAt),
	}, nil
}

// RevokeToken implements AuthService.RevokeToken.
func (h authGRPC) RevokeToken(ctx context.Context, req *mciasv1.RevokeTokenRequest) (*mciasv1.RevokeTokenResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.RevokeToken(ctx, c, req.GetJti()); err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.RevokeTokenResponse{}, nil
}

// WhoAmI implements AuthService.WhoAmI.
func (h authGRPC) WhoAmI(ctx context.Context, _ *mciasv1.WhoAmIRequest) (*mciasv1.WhoAmIResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	return &mciasv1.WhoAmIResponse{
		Subject: c.Subject, Username: c.Username, AccountType: c.AccountType,
		Roles: c.Roles, ExpiresAt: timestamppb.New(c.ExpiresAt),
	}, nil
}

// --- AccountService ---

// accountGRPC implements mciasv1.AccountServiceServer.
type accountGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafeAccountServiceServer
	grpcHandlers
}

var _ mciasv1.AccountServiceServer = accountGRPC{}

// ListAccounts implements AccountService.ListAccounts.
func (h accountGRPC) ListAccounts(ctx context.Context, _ *mciasv1.ListAccountsRequest) (*mciasv1.ListAccountsResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := h.svc.ListAccounts(ctx, c)
	if err != nil {
		return nil, h.fail(err)
	}
	out := &mciasv1.ListAccountsResponse{Accounts: make([]*mciasv1.Account, 0, len(list))}
	for _, a := range list {
		out.Accounts = append(out.Accounts, accountPB(a))
	}
	return out, nil
}

// CreateAccount implements AccountService.CreateAccount.
func (h accountGRPC) CreateAccount(ctx context.Context, req *mciasv1.CreateAccountRequest) (*mciasv1.CreateAccountResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	a, err := h.svc.CreateAccount(ctx, c, identity.CreateAccountRequest{
		Username: req.GetUsername(), AccountType: req.GetAccountType(), Password: req.GetPassword(), Roles: req.GetRoles(),
	})
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.CreateAccountResponse{Account: accountPB(a)}, nil
}

// GetAccount implements AccountService.GetAccount.
func (h accountGRPC) GetAccount(ctx context.Context, req *mciasv1.GetAccountRequest) (*mciasv1.GetAccountResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, req.GetAccount())
	if err != nil {
		return nil, h.fail(err)
	}
	a, err := h.svc.GetAccount(ctx, c, id)
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.GetAccountResponse{Account: accountPB(a)}, nil
}

// UpdateAccount implements AccountService.UpdateAccount: only the fields
// present in the request change.
func (h accountGRPC) UpdateAccount(ctx context.Context, req *mciasv1.UpdateAccountRequest) (*mciasv1.UpdateAccountResponse, error) {
	var u identity.UpdateAccountRequest
	if req.Status != nil {
		u.Status = req.Status
	}
	if req.Roles != nil {
		roles := req.Roles.GetRoles()
		if roles == nil {
			roles = []string{}
		}
		u.Roles = &roles
	}
	if req.Password != nil {
		u.Password = req.Password
	}
	a, err := h.update(ctx, req.GetAccount(), u)
	if err != nil {
		return nil, err
	}
	return &mciasv1.UpdateAccountResponse{Account: a}, nil
}

// update is the shared tail of UpdateAccount and SetRoles, as in REST.
func (h accountGRPC) update(ctx context.Context, ref string, u identity.UpdateAccountRequest) (*mciasv1.Account, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, ref)
	if err != nil {
		return nil, h.fail(err)
	}
	a, err := h.svc.UpdateAccount(ctx, c, id, u)
	if err != nil {
		return nil, h.fail(err)
	}
	return accountPB(a), nil
}

// DeleteAccount implements AccountService.DeleteAccount.
func (h accountGRPC) DeleteAccount(ctx context.Context, req *mciasv1.DeleteAccountRequest) (*mciasv1.DeleteAccountResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, req.GetAccount())
	if err != nil {
		return nil, h.fail(err)
	}
	if err := h.svc.DeleteAccount(ctx, c, id); err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.DeleteAccountResponse{}, nil
}

// SetRoles implements AccountService.SetRoles.
func (h accountGRPC) SetRoles(ctx context.Context, req *mciasv1.SetRolesRequest) (*mciasv1.SetRolesResponse, error) {
	roles := req.GetRoles()
	if roles == nil {
		roles = []string{}
	}
	a, err := h.update(ctx, req.GetAccount(), identity.UpdateAccountRequest{Roles: &roles})
	if err != nil {
		return nil, err
	}
	return &mciasv1.SetRolesResponse{Account: a}, nil
}

// ChangePassword implements AccountService.ChangePassword.
func (h accountGRPC) ChangePassword(ctx context.Context, req *mciasv1.ChangePasswordRequest) (*mciasv1.ChangePasswordResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, req.GetAccount())
	if err != nil {
		return nil, h.fail(err)
	}
	if id != c.Subject {
		return nil, h.fail(fmt.Errorf("%w: only the account itself changes its password; admins reset it with UpdateAccount", identity.ErrForbidden))
	}
	if err := h.svc.ChangePassword(ctx, c, req.GetCurrentPassword(), req.GetNewPassword()); err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.ChangePasswordResponse{}, nil
}

// IssueSystemToken implements AccountService.IssueSystemToken.
func (h accountGRPC) IssueSystemToken(ctx context.Context, req *mciasv1.IssueSystemTokenRequest) (*mciasv1.IssueSystemTokenResponse, error) {
	var ttl time.Duration
	if req.Ttl != nil {
		if err := req.Ttl.CheckValid(); err != nil || req.Ttl.AsDuration() <= 0 {
			return nil, h.fail(fmt.Errorf("%w: ttl %s: expected a positive duration", identity.ErrInvalid, req.Ttl.AsDuration()))
		}
		ttl = req.Ttl.AsDuration()
	}
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, req.GetAccount())
	if err != nil {
		return nil, h.fail(err)
	}
	iss, err := h.svc.IssueSystemToken(ctx, c, id, ttl)
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.IssueSystemTokenResponse{Token: iss.Token, ExpiresAt: timestamppb.New(iss.ExpiresAt)}, nil
}

// ListTokens implements AccountService.ListTokens.
func (h accountGRPC) ListTokens(ctx context.Context, req *mciasv1.ListTokensRequest) (*mciasv1.ListTokensResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, req.GetAccount())
	if err != nil {
		return nil, h.fail(err)
	}
	list, err := h.svc.ListTokens(ctx, c, id)
	if err != nil {
		return nil, h.fail(err)
	}
	out := &mciasv1.ListTokensResponse{Tokens: make([]*mciasv1.TokenInfo, 0, len(list))}
	for _, t := range list {
		info := &mciasv1.TokenInfo{Jti: t.JTI, Kind: t.Kind, IssuedAt: timestamppb.New(t.IssuedAt), ExpiresAt: timestamppb.New(t.ExpiresAt)}
		if t.RevokedAt != nil {
			info.RevokedAt = timestamppb.New(*t.RevokedAt)
		}
		out.Tokens = append(out.Tokens, info)
	}
	return out, nil
}

// EnrollTOTP implements AccountService.EnrollTOTP.
func (h accountGRPC) EnrollTOTP(ctx context.Context, req *mciasv1.EnrollTOTPRequest) (*mciasv1.EnrollTOTPResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, req.GetAccount())
	if err != nil {
		return nil, h.fail(err)
	}
	e, err := h.svc.EnrollTOTP(ctx, c, id)
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.EnrollTOTPResponse{Secret: e.Secret, Uri: e.URI}, nil
}

// ConfirmTOTP implements AccountService.ConfirmTOTP.
func (h accountGRPC) ConfirmTOTP(ctx context.Context, req *mciasv1.ConfirmTOTPRequest) (*mciasv1.ConfirmTOTPResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, req.GetAccount())
	if err != nil {
		return nil, h.fail(err)
	}
	codes, err := h.svc.ConfirmTOTP(ctx, c, id, req.GetCode())
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.ConfirmTOTPResponse{RecoveryCodes: codes}, nil
}

// DisableTOTP implements AccountService.DisableTOTP.
func (h accountGRPC) DisableTOTP(ctx context.Context, req *mciasv1.DisableTOTPRequest) (*mciasv1.DisableTOTPResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := h.account(ctx, c, req.GetAccount())
	if err != nil {
		return nil, h.fail(err)
	}
	if err := h.svc.DisableTOTP(ctx, c, id, req.GetCode()); err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.DisableTOTPResponse{}, nil
}

// --- PolicyService ---

// policyGRPC implements mciasv1.PolicyServiceServer.
type policyGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafePolicyServiceServer
	grpcHandlers
}

var _ mciasv1.PolicyServiceServer = policyGRPC{}

// ListPolicies implements PolicyService.ListPolicies.
func (h policyGRPC) ListPolicies(ctx context.Context, _ *mciasv1.ListPoliciesRequest) (*mciasv1.ListPoliciesResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := h.svc.ListPolicies(ctx, c)
	if err != nil {
		return nil, h.fail(err)
	}
	out := &mciasv1.ListPoliciesResponse{Policies: make([]*mciasv1.Policy, 0, len(list))}
	for _, r := range list {
		out.Policies = append(out.Policies, policyPB(r))
	}
	return out, nil
}

// CreatePolicy implements PolicyService.CreatePolicy; the request's id is
// ignored.
func (h policyGRPC) CreatePolicy(ctx context.Context, req *mciasv1.CreatePolicyRequest) (*mciasv1.CreatePolicyResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	r := ruleFrom(req.GetPolicy())
	r.ID = 0
	out, err := h.svc.CreatePolicy(ctx, c, r)
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.CreatePolicyResponse{Policy: policyPB(out)}, nil
}

// GetPolicy implements PolicyService.GetPolicy.
func (h policyGRPC) GetPolicy(ctx context.Context, req *mciasv1.GetPolicyRequest) (*mciasv1.GetPolicyResponse, error) {
	id, err := grpcPolicyID(req.GetId())
	if err != nil {
		return nil, h.fail(err)
	}
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	out, err := h.svc.GetPolicy(ctx, c, id)
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.GetPolicyResponse{Policy: policyPB(out)}, nil
}

// UpdatePolicy implements PolicyService.UpdatePolicy.
func (h policyGRPC) UpdatePolicy(ctx context.Context, req *mciasv1.UpdatePolicyRequest) (*mciasv1.UpdatePolicyResponse, error) {
	id, err := grpcPolicyID(req.GetPolicy().GetId())
	if err != nil {
		return nil, h.fail(err)
	}
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	r := ruleFrom(req.GetPolicy())
	r.ID = id
	out, err := h.svc.UpdatePolicy(ctx, c, r)
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.UpdatePolicyResponse{Policy: policyPB(out)}, nil
}

// DeletePolicy implements PolicyService.DeletePolicy.
func (h policyGRPC) DeletePolicy(ctx context.Context, req *mciasv1.DeletePolicyRequest) (*mciasv1.DeletePolicyResponse, error) {
	id, err := grpcPolicyID(req.GetId())
	if err != nil {
		return nil, h.fail(err)
	}
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.DeletePolicy(ctx, c, id); err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.DeletePolicyResponse{}, nil
}

// --- KeyService ---

// keyGRPC implements mciasv1.KeyServiceServer.
type keyGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafeKeyServiceServer
	grpcHandlers
}

var _ mciasv1.KeyServiceServer = keyGRPC{}

func keyPB(k identity.KeyInfo) *mciasv1.SigningKey {
	return &mciasv1.SigningKey{Kid: k.ID, CreatedAt: timestamppb.New(k.CreatedAt), Active: k.Active}
}

// ListKeys implements KeyService.ListKeys.
func (h keyGRPC) ListKeys(ctx context.Context, _ *mciasv1.ListKeysRequest) (*mciasv1.ListKeysResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := h.svc.Keys(ctx, c)
	if err != nil {
		return nil, h.fail(err)
	}
	out := &mciasv1.ListKeysResponse{Keys: make([]*mciasv1.SigningKey, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyPB(k))
	}
	return out, nil
}

// RotateKey implements KeyService.RotateKey.
func (h keyGRPC) RotateKey(ctx context.Context, _ *mciasv1.RotateKeyRequest) (*mciasv1.RotateKeyResponse, error) {
	c, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	k, err := h.svc.RotateKey(ctx, c)
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.RotateKeyResponse{Key: keyPB(k)}, nil
}

// GetJWKS implements KeyService.GetJWKS.
func (h keyGRPC) GetJWKS(context.Context, *mciasv1.GetJWKSRequest) (*mciasv1.GetJWKSResponse, error) {
	set := h.svc.JWKS()
	out := &mciasv1.GetJWKSResponse{Keys: make([]*mciasv1.JWK, 0, len(set.Keys))}
	for _, k := range set.Keys {
		out.Keys = append(out.Keys, &mciasv1.JWK{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Use: k.Use, Alg: k.Alg})
	}
	return out, nil
}
