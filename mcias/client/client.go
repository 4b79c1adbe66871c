// Package client is the public Go client for MCIAS over gRPC (mcias.v1):
// login and token operations plus the admin API (accounts, roles, system
// tokens, policies, TOTP, signing keys, passkeys). mciasctl is built on it;
// other programs import it, and platform CLIs log in with CLILogin. Failed
// calls are *apierr.Remote errors that keep the kind (apierr.KindOf).
package client

import (
	"context"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcdsl/grpcclient"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
)

// KindOf is the kind of a failed call's error (apierr.Unauthenticated,
// apierr.Denied, apierr.NotFound, ...).
func KindOf(err error) apierr.Kind { return apierr.KindOf(err) }

// Client calls one MCIAS server.
type Client struct {
	conn     *grpcclient.Conn
	auth     mciasv1.AuthServiceClient
	accounts mciasv1.AccountServiceClient
	policies mciasv1.PolicyServiceClient
	keys     mciasv1.KeyServiceClient
	passkeys mciasv1.PasskeyServiceClient
	onToken  func(Token)
}

// New returns a client for MCIAS's gRPC address (host:port, its
// server.grpc_addr) trusting caFile (or the system roots when empty);
// token may be empty until Login or SetToken. It connects on the first
// call.
func New(addr, caFile, token string) (*Client, error) {
	conn, err := grpcclient.Dial("mcias", addr, caFile, token)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn: conn, auth: mciasv1.NewAuthServiceClient(conn), accounts: mciasv1.NewAccountServiceClient(conn),
		policies: mciasv1.NewPolicyServiceClient(conn), keys: mciasv1.NewKeyServiceClient(conn),
		passkeys: mciasv1.NewPasskeyServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// SetToken sets the bearer token used for authenticated calls.
func (c *Client) SetToken(tok string) { c.conn.SetToken(tok) }

// OnToken registers fn to be called with every new token the client
// switches to: after Login and Renew, and after the credential changes
// that revoke every token of the caller's account and answer with a fresh
// one (ChangePassword, ConfirmTOTP, DisableTOTP on its own account).
// Command-line tools save their session with it.
func (c *Client) OnToken(fn func(Token)) { c.onToken = fn }

// adopt switches to a token an answer carried (none when tok is empty).
func (c *Client) adopt(tok string, expires *timestamppb.Timestamp) Token {
	if tok == "" {
		return Token{}
	}
	t := Token{Token: tok, ExpiresAt: expires.AsTime()}
	c.conn.SetToken(tok)
	if c.onToken != nil {
		c.onToken(t)
	}
	return t
}

// Token is an issued token.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LoginRequest is a password login on behalf of a calling service.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// TOTPCode is a current TOTP code or a recovery code, for accounts with
	// TOTP; without it such an account's login fails with kind
	// Unauthenticated and a message mentioning "totp".
	TOTPCode string `json:"totp_code,omitempty"`
	// ServiceName and Tags are what login policy sees.
	ServiceName string   `json:"service_name,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

// Login logs in and, on success, uses the new token for later calls.
func (c *Client) Login(ctx context.Context, req LoginRequest) (Token, error) {
	resp, err := c.auth.Login(ctx, &mciasv1.LoginRequest{
		Username: req.Username, Password: req.Password, TotpCode: req.TOTPCode,
		ServiceName: req.ServiceName, Tags: req.Tags,
	})
	if err != nil {
		return Token{}, c.conn.Err(err)
	}
	return c.adopt(resp.GetToken(), resp.GetExpiresAt()), nil
}

// CLILogin logs in at the MCIAS gRPC address addr trusting caFile, for
// the platform's command-line tools: it is an mcdsl/cli.LoginFunc.
func CLILogin(ctx context.Context, addr, caFile string, req cli.LoginRequest) (string, time.Time, error) {
	c, err := New(addr, caFile, "")
	if err != nil {
		return "", time.Time{}, err
	}
	defer func() { _ = c.Close() }()
	t, err := c.Login(ctx, LoginRequest{
		Username: req.Username, Password: req.Password, TOTPCode: req.TOTPCode,
		ServiceName: req.ServiceName, Tags: req.Tags,
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return t.Token, t.ExpiresAt, nil
}

var _ cli.LoginFunc = CLILogin

// Renew exchanges the current token for a fresh one and uses it.
func (c *Client) Renew(ctx context.Context) (Token, error) {
	resp, err := c.auth.Renew(ctx, &mciasv1.RenewRequest{})
	if err != nil {
		return Token{}, c.conn.Err(err)
	}
	return c.adopt(resp.GetToken(), resp.GetExpiresAt()), nil
}

// Logout revokes the current token.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.auth.Logout(ctx, &mciasv1.LogoutRequest{})
	return c.conn.Err(err)
}

// Identity is a validated token's account.
type Identity struct {
	Valid       bool      `json:"valid"`
	Subject     string    `json:"subject"`
	Username    string    `json:"username"`
	AccountType string    `json:"account_type"`
	Roles       []string  `json:"roles"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// WhoAmI describes the current token's account.
func (c *Client) WhoAmI(ctx context.Context) (Identity, error) {
	resp, err := c.auth.WhoAmI(ctx, &mciasv1.WhoAmIRequest{})
	if err != nil {
		return Identity{}, c.conn.Err(err)
	}
	return Identity{
		Valid: resp.GetValid(), Subject: resp.GetSubject(), Username: resp.GetUsername(),
		AccountType: resp.GetAccountType(), Roles: nonNil(resp.GetRoles()), ExpiresAt: resp.GetExpiresAt().AsTime(),
	}, nil
}

// Validate validates any token; an invalid one is Identity{Valid: false},
// not an error.
func (c *Client) Validate(ctx context.Context, tok string) (Identity, error) {
	resp, err := c.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: tok})
	if err != nil {
		return Identity{}, c.conn.Err(err)
	}
	if !resp.GetValid() {
		return Identity{}, nil
	}
	return Identity{
		Valid: true, Subject: resp.GetSubject(), Username: resp.GetUsername(), AccountType: resp.GetAccountType(),
		Roles: roleStrings(resp.GetRoles()), ExpiresAt: resp.GetExpiresAt().AsTime(),
	}, nil
}

// roleStrings reads a role list.
func roleStrings(l *structpb.ListValue) []string {
	out := make([]string, 0, len(l.GetValues()))
	for _, v := range l.GetValues() {
		out = append(out, v.GetStringValue())
	}
	return out
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// RevokeToken revokes a token by jti.
func (c *Client) RevokeToken(ctx context.Context, jti string) error {
	_, err := c.auth.RevokeToken(ctx, &mciasv1.RevokeTokenRequest{Jti: jti})
	return c.conn.Err(err)
}

// Account is an account.
type Account struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	AccountType string    `json:"account_type"`
	Status      string    `json:"status"`
	Roles       []string  `json:"roles"`
	TOTPEnabled bool      `json:"totp_enabled"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func accountOf(a *mciasv1.Account) Account {
	return Account{
		ID: a.GetId(), Username: a.GetUsername(), AccountType: a.GetAccountType(), Status: a.GetStatus(),
		Roles: nonNil(a.GetRoles()), TOTPEnabled: a.GetTotpEnabled(),
		CreatedAt: a.GetCreatedAt().AsTime(), UpdatedAt: a.GetUpdatedAt().AsTime(),
	}
}

// ListAccounts lists accounts (admin).
func (c *Client) ListAccounts(ctx context.Context) ([]Account, error) {
	resp, err := c.accounts.ListAccounts(ctx, &mciasv1.ListAccountsRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Account, 0, len(resp.GetAccounts()))
	for _, a := range resp.GetAccounts() {
		out = append(out, accountOf(a))
	}
	return out, nil
}

// CreateAccountRequest creates an account.
type CreateAccountRequest struct {
	Username string `json:"username"`
	// AccountType is "human" or "system".
	AccountType string `json:"account_type"`
	// Password is required for humans (at least 12 characters).
	Password string `json:"password,omitempty"`
	// Roles default to "user" for humans; system accounts take none.
	Roles []string `json:"roles,omitempty"`
}

// CreateAccount creates an account (admin).
func (c *Client) CreateAccount(ctx context.Context, req CreateAccountRequest) (Account, error) {
	resp, err := c.accounts.CreateAccount(ctx, &mciasv1.CreateAccountRequest{
		Username: req.Username, AccountType: req.AccountType, Password: req.Password, Roles: req.Roles,
	})
	if err != nil {
		return Account{}, c.conn.Err(err)
	}
	return accountOf(resp.GetAccount()), nil
}

// GetAccount fetches an account by ID or username.
func (c *Client) GetAccount(ctx context.Context, account string) (Account, error) {
	resp, err := c.accounts.GetAccount(ctx, &mciasv1.GetAccountRequest{Account: account})
	if err != nil {
		return Account{}, c.conn.Err(err)
	}
	return accountOf(resp.GetAccount()), nil
}

// UpdateAccountRequest changes an account; nil fields are left alone, and
// a non-nil empty Roles removes every role.
type UpdateAccountRequest struct {
	Status   *string   `json:"status,omitempty"`
	Roles    *[]string `json:"roles,omitempty"`
	Password *string   `json:"password,omitempty"`
}

// UpdateAccount changes status, roles or password (admin).
func (c *Client) UpdateAccount(ctx context.Context, account string, req UpdateAccountRequest) (Account, error) {
	pb := &mciasv1.UpdateAccountRequest{Account: account, Status: req.Status, Password: req.Password}
	if req.Roles != nil {
		pb.Roles = &structpb.ListValue{}
		for _, r := range *req.Roles {
			pb.Roles.Values = append(pb.Roles.Values, structpb.NewStringValue(r))
		}
	}
	resp, err := c.accounts.UpdateAccount(ctx, pb)
	if err != nil {
		return Account{}, c.conn.Err(err)
	}
	return accountOf(resp.GetAccount()), nil
}

// SetRoles replaces an account's roles (admin); none removes them all.
func (c *Client) SetRoles(ctx context.Context, account string, roles []string) (Account, error) {
	resp, err := c.accounts.SetRoles(ctx, &mciasv1.SetRolesRequest{Account: account, Roles: roles})
	if err != nil {
		return Account{}, c.conn.Err(err)
	}
	return accountOf(resp.GetAccount()), nil
}

// DeleteAccount deletes an account and its tokens (admin).
func (c *Client) DeleteAccount(ctx context.Context, account string) error {
	_, err := c.accounts.DeleteAccount(ctx, &mciasv1.DeleteAccountRequest{Account: account})
	return c.conn.Err(err)
}

// ChangePassword changes the caller's own password. MCIAS revokes every
// token of the account, the client's too, and answers with a fresh one,
// which the client uses from then on (and returns).
func (c *Client) ChangePassword(ctx context.Context, account, current, next string) (Token, error) {
	resp, err := c.accounts.ChangePassword(ctx, &mciasv1.ChangePasswordRequest{
		Account: account, CurrentPassword: current, NewPassword: next,
	})
	if err != nil {
		return Token{}, c.conn.Err(err)
	}
	return c.adopt(resp.GetToken(), resp.GetExpiresAt()), nil
}

// IssueSystemToken issues a token for a system account (admin); ttl 0
// means the server's default, which is also the maximum.
func (c *Client) IssueSystemToken(ctx context.Context, account string, ttl time.Duration) (Token, error) {
	req := &mciasv1.IssueSystemTokenRequest{Account: account}
	if ttl > 0 {
		req.Ttl = ttl.String()
	}
	resp, err := c.accounts.IssueSystemToken(ctx, req)
	if err != nil {
		return Token{}, c.conn.Err(err)
	}
	return Token{Token: resp.GetToken(), ExpiresAt: resp.GetExpiresAt().AsTime()}, nil
}

// TokenInfo describes an issued token (never the token itself).
type TokenInfo struct {
	JTI       string     `json:"jti"`
	Kind      string     `json:"kind"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// ListTokens lists an account's unexpired tokens.
func (c *Client) ListTokens(ctx context.Context, account string) ([]TokenInfo, error) {
	resp, err := c.accounts.ListTokens(ctx, &mciasv1.ListTokensRequest{Account: account})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]TokenInfo, 0, len(resp.GetTokens()))
	for _, t := range resp.GetTokens() {
		ti := TokenInfo{JTI: t.GetJti(), Kind: t.GetKind(), IssuedAt: t.GetIssuedAt().AsTime(), ExpiresAt: t.GetExpiresAt().AsTime()}
		if t.GetRevokedAt() != nil {
			r := t.GetRevokedAt().AsTime()
			ti.RevokedAt = &r
		}
		out = append(out, ti)
	}
	return out, nil
}

// TOTPEnrollment is a pending TOTP secret.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

// EnrollTOTP starts TOTP enrolment for the caller's account.
func (c *Client) EnrollTOTP(ctx context.Context, account string) (TOTPEnrollment, error) {
	resp, err := c.accounts.EnrollTOTP(ctx, &mciasv1.EnrollTOTPRequest{Account: account})
	if err != nil {
		return TOTPEnrollment{}, c.conn.Err(err)
	}
	return TOTPEnrollment{Secret: resp.GetSecret(), URI: resp.GetUri()}, nil
}

// ConfirmTOTP activates TOTP and returns the recovery codes. Turning TOTP
// on revokes every token of the account; the client switches to the fresh
// token MCIAS answers with (see OnToken).
func (c *Client) ConfirmTOTP(ctx context.Context, account, code string) ([]string, error) {
	resp, err := c.accounts.ConfirmTOTP(ctx, &mciasv1.ConfirmTOTPRequest{Account: account, Code: code})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	c.adopt(resp.GetToken(), resp.GetExpiresAt())
	return resp.GetRecoveryCodes(), nil
}

// DisableTOTP turns TOTP off (a code is needed unless an admin resets
// another account). Turning it off revokes every token of the account; on
// the caller's own account the client switches to the fresh token MCIAS
// answers with (see OnToken).
func (c *Client) DisableTOTP(ctx context.Context, account, code string) error {
	resp, err := c.accounts.DisableTOTP(ctx, &mciasv1.DisableTOTPRequest{Account: account, Code: code})
	if err != nil {
		return c.conn.Err(err)
	}
	c.adopt(resp.GetToken(), resp.GetExpiresAt())
	return nil
}

// Policy is a login policy rule.
type Policy struct {
	ID           int64    `json:"id"`
	Priority     int      `json:"priority"`
	Effect       string   `json:"effect"`
	Roles        []string `json:"roles"`
	AccountTypes []string `json:"account_types"`
	Actions      []string `json:"actions"`
	ServiceNames []string `json:"service_names"`
	RequiredTags []string `json:"required_tags"`
	Description  string   `json:"description"`
}

func policyOf(p *mciasv1.Policy) Policy {
	return Policy{
		ID: p.GetId(), Priority: int(p.GetPriority()), Effect: p.GetEffect(), Roles: nonNil(p.GetRoles()),
		AccountTypes: nonNil(p.GetAccountTypes()), Actions: nonNil(p.GetActions()),
		ServiceNames: nonNil(p.GetServiceNames()), RequiredTags: nonNil(p.GetRequiredTags()), Description: p.GetDescription(),
	}
}

func (p Policy) pb() (*mciasv1.Policy, error) {
	if p.Priority < math.MinInt32 || p.Priority > math.MaxInt32 {
		return nil, apierr.InvalidField("priority", "%d is out of range", p.Priority)
	}
	return &mciasv1.Policy{
		Id: p.ID, Priority: int32(p.Priority), Effect: p.Effect, Roles: p.Roles, AccountTypes: p.AccountTypes,
		Actions: p.Actions, ServiceNames: p.ServiceNames, RequiredTags: p.RequiredTags, Description: p.Description,
	}, nil
}

// ListPolicies lists rules in evaluation order (admin).
func (c *Client) ListPolicies(ctx context.Context) ([]Policy, error) {
	resp, err := c.policies.ListPolicies(ctx, &mciasv1.ListPoliciesRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Policy, 0, len(resp.GetPolicies()))
	for _, p := range resp.GetPolicies() {
		out = append(out, policyOf(p))
	}
	return out, nil
}

// CreatePolicy adds a rule (admin); p.ID is ignored.
func (c *Client) CreatePolicy(ctx context.Context, p Policy) (Policy, error) {
	pb, err := p.pb()
	if err != nil {
		return Policy{}, err
	}
	resp, err := c.policies.CreatePolicy(ctx, &mciasv1.CreatePolicyRequest{Policy: pb})
	if err != nil {
		return Policy{}, c.conn.Err(err)
	}
	return policyOf(resp.GetPolicy()), nil
}

// GetPolicy fetches a rule (admin).
func (c *Client) GetPolicy(ctx context.Context, id int64) (Policy, error) {
	resp, err := c.policies.GetPolicy(ctx, &mciasv1.GetPolicyRequest{Id: id})
	if err != nil {
		return Policy{}, c.conn.Err(err)
	}
	return policyOf(resp.GetPolicy()), nil
}

// UpdatePolicy replaces the rule p.ID with p (admin).
func (c *Client) UpdatePolicy(ctx context.Context, p Policy) (Policy, error) {
	pb, err := p.pb()
	if err != nil {
		return Policy{}, err
	}
	resp, err := c.policies.UpdatePolicy(ctx, &mciasv1.UpdatePolicyRequest{Policy: pb})
	if err != nil {
		return Policy{}, c.conn.Err(err)
	}
	return policyOf(resp.GetPolicy()), nil
}

// DeletePolicy removes a rule (admin).
func (c *Client) DeletePolicy(ctx context.Context, id int64) error {
	_, err := c.policies.DeletePolicy(ctx, &mciasv1.DeletePolicyRequest{Id: id})
	return c.conn.Err(err)
}

// Key describes a signing key.
type Key struct {
	ID        string    `json:"kid"`
	CreatedAt time.Time `json:"created_at"`
	Active    bool      `json:"active"`
}

func keyOf(k *mciasv1.SigningKey) Key {
	return Key{ID: k.GetKid(), CreatedAt: k.GetCreatedAt().AsTime(), Active: k.GetActive()}
}

// ListKeys lists signing keys (admin).
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	resp, err := c.keys.ListKeys(ctx, &mciasv1.ListKeysRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Key, 0, len(resp.GetKeys()))
	for _, k := range resp.GetKeys() {
		out = append(out, keyOf(k))
	}
	return out, nil
}

// RotateKey makes a new active signing key (admin).
func (c *Client) RotateKey(ctx context.Context) (Key, error) {
	resp, err := c.keys.RotateKey(ctx, &mciasv1.RotateKeyRequest{})
	if err != nil {
		return Key{}, c.conn.Err(err)
	}
	return keyOf(resp.GetKey()), nil
}

// Passkey is a registered WebAuthn credential (never key material).
type Passkey struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	CreatedAt       time.Time  `json:"created_at"`
	LastUsedAt      *time.Time `json:"last_used_at,omitempty"`
	BackupEligible  bool       `json:"backup_eligible"`
	BackupState     bool       `json:"backup_state"`
	Transports      []string   `json:"transports"`
	AAGUID          string     `json:"aaguid"`
	AttestationType string     `json:"attestation_type"`
}

func passkeyOf(p *mciasv1.Passkey) Passkey {
	out := Passkey{
		ID: p.GetId(), Name: p.GetName(), CreatedAt: p.GetCreatedAt().AsTime(), BackupEligible: p.GetBackupEligible(),
		BackupState: p.GetBackupState(), Transports: nonNil(p.GetTransports()), AAGUID: p.GetAaguid(),
		AttestationType: p.GetAttestationType(),
	}
	if p.GetLastUsedAt() != nil {
		t := p.GetLastUsedAt().AsTime()
		out.LastUsedAt = &t
	}
	return out
}

// ListPasskeys lists an account's passkeys (the account itself or an
// admin). Registering one happens in the web UI.
func (c *Client) ListPasskeys(ctx context.Context, account string) ([]Passkey, error) {
	resp, err := c.passkeys.ListPasskeys(ctx, &mciasv1.ListPasskeysRequest{Account: account})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Passkey, 0, len(resp.GetPasskeys()))
	for _, p := range resp.GetPasskeys() {
		out = append(out, passkeyOf(p))
	}
	return out, nil
}

// RenamePasskey gives a passkey a new display name.
func (c *Client) RenamePasskey(ctx context.Context, account, credentialID, name string) (Passkey, error) {
	resp, err := c.passkeys.RenamePasskey(ctx, &mciasv1.RenamePasskeyRequest{Account: account, CredentialId: credentialID, Name: name})
	if err != nil {
		return Passkey{}, c.conn.Err(err)
	}
	return passkeyOf(resp.GetPasskey()), nil
}

// DeletePasskey removes a passkey; it no longer logs in.
func (c *Client) DeletePasskey(ctx context.Context, account, credentialID string) error {
	_, err := c.passkeys.DeletePasskey(ctx, &mciasv1.DeletePasskeyRequest{Account: account, CredentialId: credentialID})
	return c.conn.Err(err)
}
