package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/token"
)

// errCredentialsChanged answers an issue that lost a race with a
// credential change; Login and Renew answer it as bad credentials and an
// invalid token.
var errCredentialsChanged = fmt.Errorf("%w: the account's credentials changed meanwhile; try again", ErrConflict)

// issue signs and records a token for a, as read when its credentials
// were checked: if they have changed since (a password change committed
// while this login was verifying the old one), nothing is recorded and
// the error is errCredentialsChanged.
func (s *Service) issue(ctx context.Context, a *store.Account, kind string, ttl time.Duration) (Issued, error) {
	iss, rec, err := s.mint(a, kind, ttl)
	if err != nil {
		return Issued{}, err
	}
	if err := s.st.RecordToken(ctx, rec, a.CredentialsChangedAt); err != nil {
		if errors.Is(err, store.ErrCredentialsChanged) {
			return Issued{}, fmt.Errorf("%w (%w)", errCredentialsChanged, err)
		}
		return Issued{}, err
	}
	return iss, nil
}

// mint signs a token for a and returns the record the caller must store
// before handing the token out.
func (s *Service) mint(a *store.Account, kind string, ttl time.Duration) (Issued, store.TokenRecord, error) {
	jti, err := token.NewID()
	if err != nil {
		return Issued{}, store.TokenRecord{}, err
	}
	now := s.now().Truncate(time.Second)
	c := token.Claims{
		Issuer: s.cfg.Issuer, Subject: a.ID, IssuedAt: now, ExpiresAt: now.Add(ttl), ID: jti,
		Username: a.Username, AccountType: a.Type, Roles: a.Roles,
	}
	s.mu.RLock()
	key := s.active
	s.mu.RUnlock()
	tok, err := token.Sign(key, c)
	if err != nil {
		return Issued{}, store.TokenRecord{}, fmt.Errorf("issue token: %w", err)
	}
	rec := store.TokenRecord{JTI: jti, AccountID: a.ID, Kind: kind, IssuedAt: now, ExpiresAt: c.ExpiresAt}
	return Issued{Token: tok, ExpiresAt: c.ExpiresAt, JTI: jti}, rec, nil
}

// validated is a token that passed every check.
type validated struct {
	claims token.Claims
	// kind is the token's kind as recorded (store.KindLogin...).
	kind string
	// account is the account's state read with the token's record
	// (store.TokenState): what the checks saw, and what a renewal issues
	// from. It may be shared with the cache: never modify it.
	account *store.Account
}

// validate checks tok completely: signature and claims (token.Parse),
// then that its jti is recorded and not revoked, and that its account
// exists, is active and has not changed credentials since the token was
// issued. A token seen before skips the parse, and the database read
// while nothing has been committed since (verified.go): the answer is
// always as fresh as a read of the database at the time of the call.
func (s *Service) validate(ctx context.Context, tok string) (*validated, error) {
	if len(tok) > token.MaxLength {
		return nil, ErrInvalidToken
	}
	now := s.now()
	key := sha256.Sum256([]byte(tok))
	e, gen, seen := s.verified.get(key, now)
	if !seen {
		c, err := token.Parse(tok, s.lookupKey, s.cfg.Issuer, now)
		if err != nil {
			return nil, ErrInvalidToken
		}
		e = verifiedEntry{claims: c}
	}
	// A store error is an outage and must not be reported as a bad token:
	// it is auth.ErrUnavailable, which the gRPC interceptor and
	// auth.Middleware answer with 503.
	version, err := s.st.DataVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	if !e.read(version) {
		// The version is read before the state, so a commit landing
		// between the two makes the next call read the state again.
		ts, err := s.st.TokenState(ctx, e.claims.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			e.state, e.missing = nil, true
		case err != nil:
			return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
		default:
			e.state, e.missing = ts, false
		}
		e.version = version
		s.verified.put(key, e, gen, now)
	}
	if e.missing {
		return nil, ErrInvalidToken
	}
	c, ts := e.claims, e.state
	a := &ts.Account
	if ts.Revoked || a.ID != c.Subject {
		return nil, ErrInvalidToken
	}
	if a.Status != store.StatusActive || issuedBeforeCredentialChange(c.IssuedAt, a) {
		return nil, ErrInvalidToken
	}
	return &validated{claims: c, kind: ts.Kind, account: a}, nil
}

// issuedBeforeCredentialChange reports whether a token issued at iat
// predates the account's last credential change. iat has whole seconds, so
// the change is compared by its second: a token from earlier in that same
// second was revoked by the change itself (store.UpdateAccount), and one
// minted later in it, such as the token handed to whoever made the change,
// stays valid.
func issuedBeforeCredentialChange(iat time.Time, a *store.Account) bool {
	return a.CredentialsChangedAt != nil && iat.Before(a.CredentialsChangedAt.Truncate(time.Second))
}

// ValidateToken implements auth.Validator for MCIAS's own APIs and answers
// /v1/token/validate: signature, expiry, revocation and the account's
// current state are all checked; roles are the account's current roles.
func (s *Service) ValidateToken(ctx context.Context, tok string) (*auth.Identity, error) {
	v, err := s.validate(ctx, tok)
	if err != nil {
		return nil, err
	}
	return &auth.Identity{
		Subject: v.account.ID, Username: v.account.Username, AccountType: v.account.Type,
		Roles: slices.Clone(v.account.Roles), ExpiresAt: v.claims.ExpiresAt,
	}, nil
}

// Renew exchanges a valid token for a new one with a fresh lifetime and
// revokes the old one. A token issued before the account's last
// credential change is not valid, so it cannot be renewed either, and a
// renewal racing such a change mints nothing.
func (s *Service) Renew(ctx context.Context, tok string) (Issued, error) {
	v, err := s.validate(ctx, tok)
	if err != nil {
		return Issued{}, err
	}
	ttl, kind := s.cfg.HumanTTL, store.KindRenew
	if v.kind == store.KindSystem {
		ttl, kind = s.cfg.SystemTTL, store.KindSystem
	}
	iss, err := s.issue(ctx, v.account, kind, ttl)
	if errors.Is(err, errCredentialsChanged) {
		return Issued{}, ErrInvalidToken
	}
	if err != nil {
		return Issued{}, err
	}
	if _, err := s.st.RevokeToken(ctx, v.claims.ID); err != nil {
		return Issued{}, err
	}
	return iss, nil
}

// Logout revokes the presented token.
func (s *Service) Logout(ctx context.Context, tok string) error {
	v, err := s.validate(ctx, tok)
	if err != nil {
		return err
	}
	_, err = s.st.RevokeToken(ctx, v.claims.ID)
	return err
}

// RevokeToken revokes a token by jti: admins any, others only their own.
func (s *Service) RevokeToken(ctx context.Context, caller *auth.Identity, jti string) error {
	rec, err := s.st.GetToken(ctx, jti)
	if err != nil {
		return mapStore(err)
	}
	if !caller.IsAdmin() && caller.Subject != rec.AccountID {
		return ErrForbidden
	}
	if _, err := s.st.RevokeToken(ctx, jti); err != nil {
		return err
	}
	s.logger.Info("token revoked", "jti", jti, "by", caller.Username)
	return nil
}

// IssueSystemToken issues a long-lived token for a system account without a
// password (admin only).
func (s *Service) IssueSystemToken(ctx context.Context, caller *auth.Identity, accountID string, ttl time.Duration) (Issued, error) {
	if !caller.IsAdmin() {
		return Issued{}, ErrForbidden
	}
	a, err := s.st.GetAccount(ctx, accountID)
	if err != nil {
		return Issued{}, mapStore(err)
	}
	if a.Type != auth.AccountSystem {
		return Issued{}, invalid("account %s is not a system account", a.Username)
	}
	if a.Status != store.StatusActive {
		return Issued{}, invalid("account %s is disabled", a.Username)
	}
	if ttl <= 0 {
		ttl = s.cfg.SystemTTL
	}
	if ttl > s.cfg.SystemTTL {
		return Issued{}, invalid("ttl %s exceeds the maximum %s", ttl, s.cfg.SystemTTL)
	}
	iss, err := s.issue(ctx, a, store.KindSystem, ttl)
	if err != nil {
		return Issued{}, err
	}
	s.logger.Info("system token issued", "account", a.Username, "by", caller.Username, "expires_at", iss.ExpiresAt)
	return iss, nil
}

// TokenInfo describes an issued token (never the token itself).
type TokenInfo struct {
	JTI       string     `json:"jti"`
	Kind      string     `json:"kind"`
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// ListTokens lists an account's unexpired tokens (admin or self).
func (s *Service) ListTokens(ctx context.Context, caller *auth.Identity, accountID string) ([]TokenInfo, error) {
	if !caller.IsAdmin() && caller.Subject != accountID {
		return nil, ErrForbidden
	}
	if _, err := s.st.GetAccount(ctx, accountID); err != nil {
		return nil, mapStore(err)
	}
	recs, err := s.st.ListTokens(ctx, accountID, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]TokenInfo, 0, len(recs))
	for _, r := range recs {
		out = append(out, TokenInfo{JTI: r.JTI, Kind: r.Kind, IssuedAt: r.IssuedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt})
	}
	return out, nil
}
