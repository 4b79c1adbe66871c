package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// EABRequest asks for External Account Binding credentials.
type EABRequest struct {
	// For is the identity the credentials bind to: empty for the caller,
	// another account's username for admins only (AccountType defaults to
	// "system"; Roles are recorded as given).
	For engine.Caller
	// TTL bounds how long the credentials stay usable; zero: no expiry.
	TTL time.Duration
}

// The bounds of EAB credentials.
const (
	// EABKeySize is the HMAC key's size in bytes.
	EABKeySize = 32
	// MaxEABTTL is the longest expiry.
	MaxEABTTL = 365 * 24 * time.Hour
	// MaxUnusedEABs bounds an identity's usable credentials per mount, so
	// nobody fills the barrier with them.
	MaxUnusedEABs = 100
)

var accountTypes = []string{"system", "human"}

// CreateEAB makes single-use EAB credentials bound to the caller (or, for
// an admin, to r.For). The HMAC key is in the result once; listings never
// show it.
func (s *Service) CreateEAB(ctx context.Context, c engine.Caller, mount string, r EABRequest) (EAB, error) {
	if c.Username == "" {
		return EAB{}, engine.ErrUnauthenticated
	}
	bound := c
	if r.For.Username != "" && r.For.Username != c.Username {
		if !c.IsAdmin() {
			return EAB{}, fmt.Errorf("%w: only admins create EAB credentials for another identity", engine.ErrDenied)
		}
		bound = engine.Caller{Username: r.For.Username, AccountType: r.For.AccountType, Roles: slices.Clone(r.For.Roles)}
		if bound.AccountType == "" {
			bound.AccountType = "system"
		}
		if !slices.Contains(accountTypes, bound.AccountType) {
			return EAB{}, apierr.InvalidField("account_type", "%q is not system or human", bound.AccountType)
		}
		if strings.ContainsAny(bound.Username, " \t\r\n/") || len(bound.Username) > 128 {
			return EAB{}, apierr.InvalidField("account", "%q is not an MCIAS account name", bound.Username)
		}
	}
	if r.TTL < 0 || r.TTL > MaxEABTTL {
		return EAB{}, apierr.InvalidField("ttl", "must be between 0 (no expiry) and %s", MaxEABTTL)
	}
	st, err := s.store(ctx, mount)
	if err != nil {
		return EAB{}, err
	}
	unlock := s.locks.lock("accounts/" + mount)
	defer unlock()
	all, err := st.EABs(ctx)
	if err != nil {
		return EAB{}, err
	}
	now := s.now()
	usable := 0
	for _, e := range all {
		if e.Caller.Username == bound.Username && e.Usable(now) {
			usable++
		}
	}
	if usable >= MaxUnusedEABs {
		return EAB{}, fmt.Errorf("%w: %s has %d unused EAB credentials on %s; revoke some", engine.ErrPrecondition, bound.Username, usable, mount)
	}
	key, err := eabKey()
	if err != nil {
		return EAB{}, err
	}
	kid := make([]byte, 16)
	if _, err := rand.Read(kid); err != nil {
		return EAB{}, err
	}
	e := EAB{KID: hex.EncodeToString(kid), Key: key, Caller: bound, CreatedBy: c.Username, CreatedAt: now}
	if r.TTL > 0 {
		e.ExpiresAt = now.Add(r.TTL)
	}
	if err := st.PutEAB(ctx, e); err != nil {
		return EAB{}, err
	}
	s.d.Logger.Info("acme: EAB credentials created", "mount", mount, "kid", e.KID, "for", bound.Username, "by", c.Username)
	return e, nil
}

// eabKey draws an HMAC key whose base64url form does not start with "-",
// so that no command line (certbot --eab-hmac-key, lego --hmac) takes it
// for an option; that costs 1/64 of one draw's entropy. The key ID is hex
// for the same reason.
func eabKey() ([]byte, error) {
	key := make([]byte, EABKeySize)
	for {
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if base64.RawURLEncoding.EncodeToString(key[:3])[0] != '-' {
			return key, nil
		}
	}
}

// ListEABs lists a mount's EAB credentials without their keys: the
// caller's own, or for an admin everyone's (account filters by bound
// identity).
func (s *Service) ListEABs(ctx context.Context, c engine.Caller, mount, account string) ([]EAB, error) {
	if c.Username == "" {
		return nil, engine.ErrUnauthenticated
	}
	if !c.IsAdmin() {
		if account != "" && account != c.Username {
			return nil, fmt.Errorf("%w: only admins list another identity's EAB credentials", engine.ErrDenied)
		}
		account = c.Username
	}
	st, err := s.store(ctx, mount)
	if err != nil {
		return nil, err
	}
	all, err := st.EABs(ctx)
	if err != nil {
		return nil, err
	}
	out := []EAB{}
	for _, e := range all {
		if account == "" || e.Caller.Username == account {
			clear(e.Key)
			e.Key = nil
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b EAB) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// RevokeEAB revokes EAB credentials (the caller's own, or any for an
// admin). Unused, they can no longer register; used, the account they
// registered is deactivated, which stops its orders at once.
func (s *Service) RevokeEAB(ctx context.Context, c engine.Caller, mount, kid string) (EAB, error) {
	if c.Username == "" {
		return EAB{}, engine.ErrUnauthenticated
	}
	st, err := s.store(ctx, mount)
	if err != nil {
		return EAB{}, err
	}
	unlock := s.locks.lock("accounts/" + mount)
	defer unlock()
	e, err := st.EAB(ctx, kid)
	if err != nil {
		return EAB{}, err
	}
	if !c.IsAdmin() && e.Caller.Username != c.Username {
		// Another identity's credentials are as absent as unknown ones.
		return EAB{}, engine.ErrNotFound
	}
	if !e.RevokedAt.IsZero() {
		return EAB{}, fmt.Errorf("%w: EAB credentials %s are revoked already", engine.ErrConflict, kid)
	}
	e.RevokedAt = s.now()
	clear(e.Key)
	e.Key = nil
	if err := st.PutEAB(ctx, e); err != nil {
		return EAB{}, err
	}
	if e.Account != "" {
		a, err := st.Account(ctx, e.Account)
		if err == nil && a.Status == StatusValid {
			a.Status = StatusDeactivated
			err = st.PutAccount(ctx, a)
		}
		if err != nil && apierr.KindOf(err) != apierr.NotFound {
			return EAB{}, err
		}
	}
	s.d.Logger.Info("acme: EAB credentials revoked", "mount", mount, "kid", kid, "account", e.Account, "by", c.Username)
	return e, nil
}
