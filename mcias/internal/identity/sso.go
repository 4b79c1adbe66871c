package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// SSOCodeTTL is how long an SSO authorization code can be exchanged: long
// enough for one browser redirect and one server-to-server call.
const SSOCodeTTL = 60 * time.Second

// SSOClient is a web UI registered (in [[sso_clients]]) to log its users in
// through MCIAS. RedirectURI is compared byte for byte; ServiceName is what
// login policy sees for logins through this client.
type SSOClient struct {
	ClientID    string
	RedirectURI string
	ServiceName string
}

// Errors of the SSO exchange. Both are invalid requests (400); their text
// carries the OAuth 2.0 error code a client can act on.
var (
	// ErrInvalidGrant: the code is unknown, already used, expired, or was
	// issued to another client or redirect URI. Deliberately one answer.
	ErrInvalidGrant = fmt.Errorf("%w: invalid_grant", ErrInvalid)
	// ErrInvalidClient: the client_id is not registered.
	ErrInvalidClient = fmt.Errorf("%w: invalid_client", ErrInvalid)
)

// errInactiveAccount aborts a redemption whose account was disabled after
// the code was issued.
var errInactiveAccount = errors.New("account is not active")

// hashCode is how a code is stored and looked up: a leaked database does
// not hand out live codes.
func hashCode(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// IssueSSOCode checks login policy for the signed-in caller at client's
// service and returns a fresh single-use code (32 random bytes, base64url)
// bound to the client, its redirect URI and the caller's account, valid for
// SSOCodeTTL. Only the code's SHA-256 is stored.
func (s *Service) IssueSSOCode(ctx context.Context, caller *auth.Identity, c SSOClient) (string, error) {
	if err := s.Authorize(ctx, caller.Subject, policy.ActionLogin, c.ServiceName, nil); err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("sso code: %w", err)
	}
	code := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	if err := s.st.CreateSSOCode(ctx, store.SSOCode{
		Hash: hashCode(code), ClientID: c.ClientID, RedirectURI: c.RedirectURI, AccountID: caller.Subject,
		CreatedAt: now, ExpiresAt: now.Add(SSOCodeTTL),
	}); err != nil {
		return "", err
	}
	s.logger.Info("sso code issued", "username", caller.Username, "client_id", c.ClientID)
	return code, nil
}

// ExchangeSSOCode redeems a code for an ordinary login token (recorded as
// kind "sso"). The code must exist, be unused and unexpired, and have been
// issued to c for redirectURI; it is consumed atomically, so of two
// parallel exchanges exactly one succeeds. Presenting an already redeemed
// code means it leaked: the token issued from it is revoked (RFC 6749
// §4.1.2) and nothing is issued.
func (s *Service) ExchangeSSOCode(ctx context.Context, c SSOClient, code, redirectURI string) (Issued, error) {
	if code == "" || redirectURI == "" {
		return Issued{}, invalid("code and redirect_uri are required")
	}
	hash := hashCode(code)
	var (
		iss      Issued
		username string
	)
	err := s.st.RedeemSSOCode(ctx, store.SSORedemption{
		Hash: hash, ClientID: c.ClientID, RedirectURI: redirectURI, Now: s.now(),
	}, func(accountID string) (store.TokenRecord, error) {
		a, err := s.st.GetAccount(ctx, accountID)
		if err != nil {
			return store.TokenRecord{}, err
		}
		if a.Status != store.StatusActive {
			return store.TokenRecord{}, errInactiveAccount
		}
		i, rec, err := s.mint(a, store.KindSSO, s.cfg.HumanTTL)
		iss, username = i, a.Username
		return rec, err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		revoked, rerr := s.st.RevokeSSOCodeToken(ctx, hash, s.now())
		if rerr != nil {
			return Issued{}, rerr
		}
		if revoked {
			s.logger.Warn("sso code replayed: revoked the token issued from it", "client_id", c.ClientID)
		}
		return Issued{}, ErrInvalidGrant
	case errors.Is(err, errInactiveAccount):
		return Issued{}, ErrInvalidGrant
	case err != nil:
		return Issued{}, err
	}
	s.logger.Info("sso login", "username", username, "client_id", c.ClientID, "service_name", c.ServiceName)
	return iss, nil
}
