package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// accountGRPC implements mciasv1.AccountServiceServer.
type accountGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafeAccountServiceServer
	grpcHandlers
}

var _ mciasv1.AccountServiceServer = accountGRPC{}

func accountPB(a identity.Account) *mciasv1.Account {
	return &mciasv1.Account{
		Id: a.ID, Username: a.Username, AccountType: a.AccountType, Status: a.Status, Roles: a.Roles,
		TotpEnabled: a.TOTPEnabled, CreatedAt: timestamppb.New(a.CreatedAt), UpdatedAt: timestamppb.New(a.UpdatedAt),
	}
}

// ListAccounts implements AccountService.ListAccounts.
func (h accountGRPC) ListAccounts(ctx context.Context, _ *mciasv1.ListAccountsRequest) (*mciasv1.ListAccountsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := h.svc.ListAccounts(ctx, c)
	if err != nil {
		return nil, err
	}
	out := &mciasv1.ListAccountsResponse{Accounts: make([]*mciasv1.Account, 0, len(list))}
	for _, a := range list {
		out.Accounts = append(out.Accounts, accountPB(a))
	}
	return out, nil
}

// CreateAccount implements AccountService.CreateAccount.
func (h accountGRPC) CreateAccount(ctx context.Context, req *mciasv1.CreateAccountRequest) (*mciasv1.CreateAccountResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	a, err := h.svc.CreateAccount(ctx, c, identity.CreateAccountRequest{
		Username: req.GetUsername(), AccountType: req.GetAccountType(), Password: req.GetPassword(), Roles: req.GetRoles(),
	})
	if err != nil {
		return nil, err
	}
	return &mciasv1.CreateAccountResponse{Account: accountPB(a)}, nil
}

// GetAccount implements AccountService.GetAccount.
func (h accountGRPC) GetAccount(ctx context.Context, req *mciasv1.GetAccountRequest) (*mciasv1.GetAccountResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	a, err := h.svc.GetAccount(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return &mciasv1.GetAccountResponse{Account: accountPB(a)}, nil
}

// UpdateAccount implements AccountService.UpdateAccount: only the fields
// present in the request change. A present role list replaces the roles,
// an empty one removes them all.
func (h accountGRPC) UpdateAccount(ctx context.Context, req *mciasv1.UpdateAccountRequest) (*mciasv1.UpdateAccountResponse, error) {
	u := identity.UpdateAccountRequest{Status: req.Status, Password: req.Password}
	if req.Roles != nil {
		roles, err := rolesOf(req.Roles)
		if err != nil {
			return nil, err
		}
		u.Roles = &roles
	}
	a, err := h.update(ctx, req.GetAccount(), u)
	if err != nil {
		return nil, err
	}
	return &mciasv1.UpdateAccountResponse{Account: a}, nil
}

// update is the shared tail of UpdateAccount and SetRoles.
func (h accountGRPC) update(ctx context.Context, ref string, u identity.UpdateAccountRequest) (*mciasv1.Account, error) {
	c, id, err := h.account(ctx, ref)
	if err != nil {
		return nil, err
	}
	a, err := h.svc.UpdateAccount(ctx, c, id, u)
	if err != nil {
		return nil, err
	}
	return accountPB(a), nil
}

// DeleteAccount implements AccountService.DeleteAccount.
func (h accountGRPC) DeleteAccount(ctx context.Context, req *mciasv1.DeleteAccountRequest) (*mciasv1.DeleteAccountResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	if err := h.svc.DeleteAccount(ctx, c, id); err != nil {
		return nil, err
	}
	return &mciasv1.DeleteAccountResponse{}, nil
}

// SetRoles implements AccountService.SetRoles: the roles are replaced,
// and none given removes them all.
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

// ChangePassword implements AccountService.ChangePassword: the answer is
// the caller's new token (the change revoked the one it called with).
func (h accountGRPC) ChangePassword(ctx context.Context, req *mciasv1.ChangePasswordRequest) (*mciasv1.ChangePasswordResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	iss, err := h.svc.ChangePassword(ctx, c, id, req.GetCurrentPassword(), req.GetNewPassword())
	if err != nil {
		return nil, err
	}
	return &mciasv1.ChangePasswordResponse{Token: iss.Token, ExpiresAt: expiry(iss)}, nil
}

// expiry is an issued token's expiry for an answer; unset when no token
// was issued.
func expiry(iss identity.Issued) *timestamppb.Timestamp {
	if iss.Token == "" {
		return nil
	}
	return timestamppb.New(iss.ExpiresAt)
}

// parseTTL reads a requested token lifetime: empty is the default (0), or a
// positive Go duration.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, apierr.InvalidField("ttl", "%q: expected a positive duration like \"720h\"", s)
	}
	return d, nil
}

// IssueSystemToken implements AccountService.IssueSystemToken.
func (h accountGRPC) IssueSystemToken(ctx context.Context, req *mciasv1.IssueSystemTokenRequest) (*mciasv1.IssueSystemTokenResponse, error) {
	ttl, err := parseTTL(req.GetTtl())
	if err != nil {
		return nil, err
	}
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	iss, err := h.svc.IssueSystemToken(ctx, c, id, ttl)
	if err != nil {
		return nil, err
	}
	return &mciasv1.IssueSystemTokenResponse{Token: iss.Token, ExpiresAt: timestamppb.New(iss.ExpiresAt)}, nil
}

// ListTokens implements AccountService.ListTokens.
func (h accountGRPC) ListTokens(ctx context.Context, req *mciasv1.ListTokensRequest) (*mciasv1.ListTokensResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	list, err := h.svc.ListTokens(ctx, c, id)
	if err != nil {
		return nil, err
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
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	e, err := h.svc.EnrollTOTP(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return &mciasv1.EnrollTOTPResponse{Secret: e.Secret, Uri: e.URI}, nil
}

// ConfirmTOTP implements AccountService.ConfirmTOTP.
func (h accountGRPC) ConfirmTOTP(ctx context.Context, req *mciasv1.ConfirmTOTPRequest) (*mciasv1.ConfirmTOTPResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	codes, iss, err := h.svc.ConfirmTOTP(ctx, c, id, req.GetCode())
	if err != nil {
		return nil, err
	}
	return &mciasv1.ConfirmTOTPResponse{RecoveryCodes: codes, Token: iss.Token, ExpiresAt: expiry(iss)}, nil
}

// DisableTOTP implements AccountService.DisableTOTP.
func (h accountGRPC) DisableTOTP(ctx context.Context, req *mciasv1.DisableTOTPRequest) (*mciasv1.DisableTOTPResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	iss, err := h.svc.DisableTOTP(ctx, c, id, req.GetCode())
	if err != nil {
		return nil, err
	}
	return &mciasv1.DisableTOTPResponse{Token: iss.Token, ExpiresAt: expiry(iss)}, nil
}
