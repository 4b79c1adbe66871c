// Package client is the public Go client for the MCIAS REST API: login and
// token operations plus the admin API (accounts, roles, system tokens,
// policies, TOTP, signing keys). mciasctl is built on it; other programs
// may import it.
package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"git.metacircular.net/metacircular/mcdsl/restclient"
)

// Error is an error answer from the server.
type Error = restclient.Error

// StatusOf returns the HTTP status of an *Error, or 0.
func StatusOf(err error) int { return restclient.StatusOf(err) }

// Client calls one MCIAS server.
type Client struct {
	rc *restclient.Client
}

// New returns a client for server (https://host:port) trusting caFile (or
// the system roots when empty); token may be empty until it is set.
func New(server, caFile, token string) (*Client, error) {
	rc, err := restclient.New("mcias", server, caFile, token)
	if err != nil {
		return nil, err
	}
	return &Client{rc: rc}, nil
}

// SetToken sets the bearer token used for authenticated calls.
func (c *Client) SetToken(tok string) { c.rc.SetToken(tok) }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	return c.rc.Do(ctx, method, path, body, out)
}

func esc(s string) string { return url.PathEscape(s) }

// Token is an issued token.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LoginRequest is a login.
type LoginRequest struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	TOTPCode    string   `json:"totp_code,omitempty"`
	ServiceName string   `json:"service_name,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

// Login logs in and, on success, uses the new token for later calls.
func (c *Client) Login(ctx context.Context, req LoginRequest) (Token, error) {
	var t Token
	if err := c.do(ctx, http.MethodPost, "/v1/auth/login", req, &t); err != nil {
		return Token{}, err
	}
	c.rc.SetToken(t.Token)
	return t, nil
}

// Renew exchanges the current token for a fresh one and uses it.
func (c *Client) Renew(ctx context.Context) (Token, error) {
	var t Token
	if err := c.do(ctx, http.MethodPost, "/v1/auth/renew", nil, &t); err != nil {
		return Token{}, err
	}
	c.rc.SetToken(t.Token)
	return t, nil
}

// Logout revokes the current token.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/auth/logout", nil, nil)
}

// Identity is a validated caller.
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
	var id Identity
	err := c.do(ctx, http.MethodGet, "/v1/whoami", nil, &id)
	return id, err
}

// Validate validates any token.
func (c *Client) Validate(ctx context.Context, tok string) (Identity, error) {
	var id Identity
	err := c.do(ctx, http.MethodPost, "/v1/token/validate", map[string]string{"token": tok}, &id)
	return id, err
}

// RevokeToken revokes a token by jti.
func (c *Client) RevokeToken(ctx context.Context, jti string) error {
	return c.do(ctx, http.MethodPost, "/v1/token/revoke", map[string]string{"jti": jti}, nil)
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

// ListAccounts lists accounts.
func (c *Client) ListAccounts(ctx context.Context) ([]Account, error) {
	var out struct {
		Accounts []Account `json:"accounts"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/accounts", nil, &out)
	return out.Accounts, err
}

// CreateAccountRequest creates an account.
type CreateAccountRequest struct {
	Username    string   `json:"username"`
	AccountType string   `json:"account_type"`
	Password    string   `json:"password,omitempty"`
	Roles       []string `json:"roles,omitempty"`
}

// CreateAccount creates an account.
func (c *Client) CreateAccount(ctx context.Context, req CreateAccountRequest) (Account, error) {
	var a Account
	err := c.do(ctx, http.MethodPost, "/v1/accounts", req, &a)
	return a, err
}

// GetAccount fetches an account by ID or username.
func (c *Client) GetAccount(ctx context.Context, account string) (Account, error) {
	var a Account
	err := c.do(ctx, http.MethodGet, "/v1/accounts/"+esc(account), nil, &a)
	return a, err
}

// UpdateAccountRequest changes an account; nil fields are left alone.
type UpdateAccountRequest struct {
	Status   *string   `json:"status,omitempty"`
	Roles    *[]string `json:"roles,omitempty"`
	Password *string   `json:"password,omitempty"`
}

// UpdateAccount changes status, roles or password.
func (c *Client) UpdateAccount(ctx context.Context, account string, req UpdateAccountRequest) (Account, error) {
	var a Account
	err := c.do(ctx, http.MethodPatch, "/v1/accounts/"+esc(account), req, &a)
	return a, err
}

// SetRoles replaces an account's roles.
func (c *Client) SetRoles(ctx context.Context, account string, roles []string) (Account, error) {
	if roles == nil {
		roles = []string{}
	}
	var a Account
	err := c.do(ctx, http.MethodPut, "/v1/accounts/"+esc(account)+"/roles", map[string][]string{"roles": roles}, &a)
	return a, err
}

// DeleteAccount deletes an account.
func (c *Client) DeleteAccount(ctx context.Context, account string) error {
	return c.do(ctx, http.MethodDelete, "/v1/accounts/"+esc(account), nil, nil)
}

// ChangePassword changes the caller's own password.
func (c *Client) ChangePassword(ctx context.Context, account, current, next string) error {
	return c.do(ctx, http.MethodPost, "/v1/accounts/"+esc(account)+"/password",
		map[string]string{"current_password": current, "new_password": next}, nil)
}

// IssueSystemToken issues a token for a system account; ttl 0 means the
// server's default.
func (c *Client) IssueSystemToken(ctx context.Context, account string, ttl time.Duration) (Token, error) {
	body := map[string]string{}
	if ttl > 0 {
		body["ttl"] = ttl.String()
	}
	var t Token
	err := c.do(ctx, http.MethodPost, "/v1/accounts/"+esc(account)+"/token", body, &t)
	return t, err
}

// TokenInfo describes an issued token.
type TokenInfo struct {
	JTI       string     `json:"jti"`
	Kind      string     `json:"kind"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// ListTokens lists an account's unexpired tokens.
func (c *Client) ListTokens(ctx context.Context, account string) ([]TokenInfo, error) {
	var out struct {
		Tokens []TokenInfo `json:"tokens"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/accounts/"+esc(account)+"/tokens", nil, &out)
	return out.Tokens, err
}

// TOTPEnrollment is a pending TOTP secret.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

// EnrollTOTP starts TOTP enrolment for the caller's account.
func (c *Client) EnrollTOTP(ctx context.Context, account string) (TOTPEnrollment, error) {
	var e TOTPEnrollment
	err := c.do(ctx, http.MethodPost, "/v1/accounts/"+esc(account)+"/totp", nil, &e)
	return e, err
}

// ConfirmTOTP activates TOTP and returns the recovery codes.
func (c *Client) ConfirmTOTP(ctx context.Context, account, code string) ([]string, error) {
	var out struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/accounts/"+esc(account)+"/totp/confirm", map[string]string{"code": code}, &out)
	return out.RecoveryCodes, err
}

// DisableTOTP turns TOTP off (code needed unless an admin resets another
// account).
func (c *Client) DisableTOTP(ctx context.Context, account, code string) error {
	return c.do(ctx, http.MethodDelete, "/v1/accounts/"+esc(account)+"/totp", map[string]string{"code": code}, nil)
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

// ListPolicies lists rules in evaluation order.
func (c *Client) ListPolicies(ctx context.Context) ([]Policy, error) {
	var out struct {
		Policies []Policy `json:"policies"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/policies", nil, &out)
	return out.Policies, err
}

// CreatePolicy adds a rule.
func (c *Client) CreatePolicy(ctx context.Context, p Policy) (Policy, error) {
	var out Policy
	err := c.do(ctx, http.MethodPost, "/v1/policies", p, &out)
	return out, err
}

// GetPolicy fetches a rule.
func (c *Client) GetPolicy(ctx context.Context, id int64) (Policy, error) {
	var out Policy
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/policies/%d", id), nil, &out)
	return out, err
}

// UpdatePolicy replaces a rule.
func (c *Client) UpdatePolicy(ctx context.Context, p Policy) (Policy, error) {
	var out Policy
	err := c.do(ctx, http.MethodPut, fmt.Sprintf("/v1/policies/%d", p.ID), p, &out)
	return out, err
}

// DeletePolicy removes a rule.
func (c *Client) DeletePolicy(ctx context.Context, id int64) error {
	return c.do(ctx, http.MethodDelete, fmt.Sprintf("/v1/policies/%d", id), nil, nil)
}

// Key describes a signing key.
type Key struct {
	ID        string    `json:"kid"`
	CreatedAt time.Time `json:"created_at"`
	Active    bool      `json:"active"`
}

// ListKeys lists signing keys.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	var out struct {
		Keys []Key `json:"keys"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/keys", nil, &out)
	return out.Keys, err
}

// RotateKey makes a new active signing key.
func (c *Client) RotateKey(ctx context.Context) (Key, error) {
	var k Key
	err := c.do(ctx, http.MethodPost, "/v1/keys/rotate", nil, &k)
	return k, err
}
