package client

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// EAB describes External Account Binding credentials of a CA mount's
// ACME server (never their key).
type EAB struct {
	KID         string   `json:"kid"`
	Mount       string   `json:"mount"`
	Account     string   `json:"account"`
	AccountType string   `json:"account_type"`
	Roles       []string `json:"roles,omitempty"`
	CreatedBy   string   `json:"created_by"`
	// Status is usable, used, expired or revoked.
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	UsedAt      time.Time `json:"used_at,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	ACMEAccount string    `json:"acme_account,omitempty"`
}

// EABKey is new credentials: their description and the base64url HMAC
// key, shown only once (certbot's --eab-hmac-key, lego's --hmac).
type EABKey struct {
	EAB
	HMACKey string `json:"hmac_key"`
}

// EABRequest asks for credentials; zero fields bind them to the caller,
// without expiry.
type EABRequest struct {
	// Account binds them to another MCIAS identity (admin only), with
	// AccountType (system by default) and Roles as its ACL rules should
	// see them.
	Account     string
	AccountType string
	Roles       []string
	// TTL bounds their use.
	TTL time.Duration
}

func optTime(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func eabOf(e *mcv1.EAB) EAB {
	return EAB{
		KID: e.GetKid(), Mount: e.GetMount(), Account: e.GetAccount(), AccountType: e.GetAccountType(), Roles: e.GetRoles(),
		CreatedBy: e.GetCreatedBy(), Status: e.GetStatus(), CreatedAt: e.GetCreatedAt().AsTime(),
		ExpiresAt: optTime(e.GetExpiresAt()), UsedAt: optTime(e.GetUsedAt()), RevokedAt: optTime(e.GetRevokedAt()),
		ACMEAccount: e.GetAcmeAccount(),
	}
}

// CreateEAB makes single-use EAB credentials on a CA mount for an ACME
// client to register with; its account then acts as the bound identity.
func (c *Client) CreateEAB(ctx context.Context, mount string, r EABRequest) (EABKey, error) {
	resp, err := c.acme.CreateEAB(ctx, &mcv1.CreateEABRequest{
		Mount: mount, Account: r.Account, AccountType: r.AccountType, Roles: r.Roles, Ttl: FormatDuration(r.TTL),
	})
	if err != nil {
		return EABKey{}, c.conn.Err(err)
	}
	return EABKey{EAB: eabOf(resp.GetEab()), HMACKey: resp.GetHmacKey()}, nil
}

// EABs lists credentials: the caller's, or for an admin everyone's
// (account filters; empty for all).
func (c *Client) EABs(ctx context.Context, mount, account string) ([]EAB, error) {
	resp, err := c.acme.ListEABs(ctx, &mcv1.ListEABsRequest{Mount: mount, Account: account})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]EAB, len(resp.GetEabs()))
	for i, e := range resp.GetEabs() {
		out[i] = eabOf(e)
	}
	return out, nil
}

// RevokeEAB revokes credentials; used ones also deactivate their ACME
// account.
func (c *Client) RevokeEAB(ctx context.Context, mount, kid string) (EAB, error) {
	resp, err := c.acme.RevokeEAB(ctx, &mcv1.RevokeEABRequest{Mount: mount, Kid: kid})
	if err != nil {
		return EAB{}, c.conn.Err(err)
	}
	return eabOf(resp.GetEab()), nil
}
