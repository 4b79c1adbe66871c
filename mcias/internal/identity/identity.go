package identity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/password"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/throttle"
	"git.metacircular.net/metacircular/mcias/internal/token"
)

// Config tunes the service.
type Config struct {
	// Issuer is the iss claim of every token.
	Issuer string
	// HumanTTL is the lifetime of login tokens; SystemTTL of system tokens.
	HumanTTL, SystemTTL time.Duration
	// Argon2 are the password hashing parameters for new hashes.
	Argon2 password.Params
	// AccountFailures and IPFailures are the failed-login limits per
	// ThrottleWindow.
	AccountFailures, IPFailures int
	ThrottleWindow              time.Duration
	// Now overrides the clock (tests).
	Now func() time.Time
}

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if c.Issuer == "" {
		c.Issuer = "mcias"
	}
	if c.HumanTTL == 0 {
		c.HumanTTL = 12 * time.Hour
	}
	if c.SystemTTL == 0 {
		c.SystemTTL = 365 * 24 * time.Hour
	}
	if c.Argon2 == (password.Params{}) {
		c.Argon2 = password.DefaultParams()
	}
	if c.AccountFailures == 0 {
		c.AccountFailures = 10
	}
	if c.IPFailures == 0 {
		c.IPFailures = 50
	}
	if c.ThrottleWindow == 0 {
		c.ThrottleWindow = 15 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service is the MCIAS domain.
type Service struct {
	st        *store.Store
	cfg       Config
	logger    *slog.Logger
	equalizer *password.Equalizer
	acct, ip  *throttle.Limiter

	mu     sync.RWMutex
	keys   map[string]token.Key
	active token.Key
}

// New loads the signing keys (creating the first one) and returns the service.
func New(ctx context.Context, st *store.Store, cfg Config, logger *slog.Logger) (*Service, error) {
	cfg.Defaults()
	if err := cfg.Argon2.Validate(); err != nil {
		return nil, fmt.Errorf("identity: argon2: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	eq, err := password.NewEqualizer(cfg.Argon2)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s := &Service{
		st: st, cfg: cfg, logger: logger, equalizer: eq,
		acct: throttle.New(cfg.AccountFailures, cfg.ThrottleWindow, cfg.Now, true),
		ip:   throttle.New(cfg.IPFailures, cfg.ThrottleWindow, cfg.Now, false),
	}
	if err := s.loadKeys(ctx); err != nil {
		return nil, err
	}
	if s.active.Private == nil {
		if _, err := s.RotateKey(ctx, nil); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

func (s *Service) loadKeys(ctx context.Context) error {
	stored, err := s.st.Keys(ctx)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	keys := map[string]token.Key{}
	var active token.Key
	for _, k := range stored {
		tk := token.Key{ID: k.ID, Public: ed25519.PublicKey(k.Public), Private: ed25519.PrivateKey(k.Private), CreatedAt: k.CreatedAt}
		keys[k.ID] = tk
		if k.Active {
			active = tk
		}
	}
	s.mu.Lock()
	s.keys, s.active = keys, active
	s.mu.Unlock()
	return nil
}

func (s *Service) lookupKey(kid string) (ed25519.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[kid]
	return k.Public, ok
}

// --- login and tokens ---

// LoginRequest is a password login.
type LoginRequest struct {
	Username, Password, TOTPCode string
	ServiceName                  string
	Tags                         []string
	// RemoteIP is the client address, for per-IP throttling.
	RemoteIP string
}

// Issued is a freshly issued token.
type Issued struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	JTI       string    `json:"-"`
}

var (
	usernameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	serviceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	tagRe         = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,127}$`)
)

func validateLoginInput(r LoginRequest) error {
	if len(r.Username) == 0 || len(r.Username) > 64 || len(r.Password) > 1024 || len(r.TOTPCode) > 64 {
		return invalid("username (1-64 bytes), password (at most 1024 bytes) and totp_code are required to be of sane length")
	}
	if r.ServiceName != "" && !serviceNameRe.MatchString(r.ServiceName) {
		return invalid("service_name %q is not a valid service name", r.ServiceName)
	}
	if len(r.Tags) > 32 {
		return invalid("at most 32 tags")
	}
	for _, t := range r.Tags {
		if !tagRe.MatchString(t) {
			return invalid("tag %q is not valid", t)
		}
	}
	return nil
}

func ipKey(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return "ip:" + ap.Addr().String()
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return "ip:" + a.String()
	}
	return "ip:" + remote
}

// Login checks credentials, the second factor and login policy and issues a
// token. Failures are throttled per account name and per source IP.
func (s *Service) Login(ctx context.Context, req LoginRequest) (Issued, error) {
	if err := validateLoginInput(req); err != nil {
		return Issued{}, err
	}
	name := strings.ToLower(req.Username)
	attempt, ok := s.acct.Begin("acct:" + name)
	if !ok {
		return Issued{}, ErrThrottled
	}
	ipAttempt, ok := s.ip.Begin(ipKey(req.RemoteIP))
	if !ok {
		attempt.Done(true) // not this account's failure
		return Issued{}, ErrThrottled
	}
	success := false
	defer func() {
		attempt.Done(success)
		ipAttempt.Done(success)
	}()

	a, err := s.st.GetAccountByUsername(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Issued{}, err
	}
	if a == nil || a.Status != store.StatusActive || a.PasswordHash == "" {
		s.equalizer.Burn(req.Password)
		s.logger.Info("login failed", "username", name, "service_name", req.ServiceName, "remote", req.RemoteIP)
		return Issued{}, ErrBadCredentials
	}
	okPw, err := password.Verify(req.Password, a.PasswordHash)
	if err != nil {
		return Issued{}, fmt.Errorf("login: stored hash for %s: %w", a.Username, err)
	}
	if !okPw {
		s.logger.Info("login failed", "username", name, "service_name", req.ServiceName, "remote", req.RemoteIP)
		return Issued{}, ErrBadCredentials
	}
	if a.TOTPEnabled {
		if req.TOTPCode == "" {
			return Issued{}, ErrTOTPRequired
		}
		if err := s.checkSecondFactor(ctx, a, req.TOTPCode); err != nil {
			s.logger.Info("login failed: second factor", "username", name, "remote", req.RemoteIP)
			return Issued{}, err
		}
	}
	// Credentials are right from here on: a policy denial is not a guess.
	success = true
	if err := s.checkPolicy(ctx, a, policy.ActionLogin, req.ServiceName, req.Tags); err != nil {
		return Issued{}, err
	}
	if password.NeedsRehash(a.PasswordHash, s.cfg.Argon2) {
		if h, err := password.Hash(req.Password, s.cfg.Argon2); err == nil {
			_, _ = s.st.UpdateAccount(ctx, a.ID, func(acc *store.Account) error { acc.PasswordHash = h; return nil })
		}
	}
	iss, err := s.issue(ctx, a, store.KindLogin, s.cfg.HumanTTL)
	if err != nil {
		return Issued{}, err
	}
	s.logger.Info("login", "username", a.Username, "service_name", req.ServiceName, "remote", req.RemoteIP)
	return iss, nil
}

// throttled runs check (a password or second-factor verification for an
// already authenticated caller) under the account's failed-attempt limit,
// so a stolen token cannot be used to guess the password or a TOTP code.
func (s *Service) throttled(username string, check func() error) error {
	attempt, ok := s.acct.Begin("acct:" + strings.ToLower(username))
	if !ok {
		return ErrThrottled
	}
	err := check()
	attempt.Done(err == nil)
	return err
}

func (s *Service) checkPolicy(ctx context.Context, a *store.Account, action, serviceName string, tags []string) error {
	rules, err := s.st.ListPolicies(ctx)
	if err != nil {
		return err
	}
	d := policy.Evaluate(rules, policy.Request{
		Roles: a.Roles, AccountType: a.Type, Action: action, ServiceName: serviceName, Tags: tags,
	})
	if !d.Allow {
		s.logger.Info("login denied by policy", "username", a.Username, "service_name", serviceName, "rule", d.RuleID, "reason", d.Reason)
		return ErrPolicyDenied
	}
	return nil
}

// Authorize evaluates login policy for an already authenticated account,
// for flows (SSO, passkeys) that authenticate differently.
func (s *Service) Authorize(ctx context.Context, accountID, action, serviceName string, tags []string) error {
	a, err := s.st.GetAccount(ctx, accountID)
	if err != nil {
		return mapStore(err)
	}
	return s.checkPolicy(ctx, a, action, serviceName, tags)
}

// issue signs and records a token for a.
func (s *Service) issue(ctx context.Context, a *store.Account, kind string, ttl time.Duration) (Issued, error) {
	iss, rec, err := s.mint(a, kind, ttl)
	if err != nil {
		return Issued{}, err
	}
	if err := s.st.RecordToken(ctx, rec); err != nil {
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
	claims  token.Claims
	record  *store.TokenRecord
	account *store.Account
}

func (s *Service) validate(ctx context.Context, tok string) (*validated, error) {
	c, err := token.Parse(tok, s.lookupKey, s.cfg.Issuer, s.now())
	if err != nil {
		return nil, ErrInvalidToken
	}
	// A missing row is an invalid token; any other store error is an
	// outage and must not be reported as a bad token.
	rec, err := s.st.GetToken(ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, err
	}
	if rec.RevokedAt != nil || rec.AccountID != c.Subject {
		return nil, ErrInvalidToken
	}
	a, err := s.st.GetAccount(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, err
	}
	if a.Status != store.StatusActive {
		return nil, ErrInvalidToken
	}
	return &validated{claims: c, record: rec, account: a}, nil
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
// revokes the old one.
func (s *Service) Renew(ctx context.Context, tok string) (Issued, error) {
	v, err := s.validate(ctx, tok)
	if err != nil {
		return Issued{}, err
	}
	ttl, kind := s.cfg.HumanTTL, store.KindRenew
	if v.record.Kind == store.KindSystem {
		ttl, kind = s.cfg.SystemTTL, store.KindSystem
	}
	iss, err := s.issue(ctx, v.account, kind, ttl)
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

// --- keys ---

// KeyInfo describes a signing key (public part only).
type KeyInfo struct {
	ID        string    `json:"kid"`
	CreatedAt time.Time `json:"created_at"`
	Active    bool      `json:"active"`
}

// RotateKey creates a new active signing key. Tokens signed by older keys
// stay valid until they expire. caller nil means the service itself (first
// start).
func (s *Service) RotateKey(ctx context.Context, caller *auth.Identity) (KeyInfo, error) {
	if caller != nil && !caller.IsAdmin() {
		return KeyInfo{}, ErrForbidden
	}
	k, err := token.NewKey(s.now())
	if err != nil {
		return KeyInfo{}, err
	}
	if err := s.st.AddKey(ctx, store.SigningKey{ID: k.ID, Private: k.Private, Public: k.Public, CreatedAt: k.CreatedAt, Active: true}); err != nil {
		return KeyInfo{}, err
	}
	if err := s.loadKeys(ctx); err != nil {
		return KeyInfo{}, err
	}
	by := "mcias"
	if caller != nil {
		by = caller.Username
	}
	s.logger.Info("signing key rotated", "kid", k.ID, "by", by)
	return KeyInfo{ID: k.ID, CreatedAt: k.CreatedAt, Active: true}, nil
}

// Keys lists the signing keys (admin only).
func (s *Service) Keys(ctx context.Context, caller *auth.Identity) ([]KeyInfo, error) {
	if !caller.IsAdmin() {
		return nil, ErrForbidden
	}
	stored, err := s.st.Keys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(stored))
	for _, k := range stored {
		out = append(out, KeyInfo{ID: k.ID, CreatedAt: k.CreatedAt, Active: k.Active})
	}
	return out, nil
}

// JWKS returns the public keys for /.well-known/jwks.json.
func (s *Service) JWKS() token.JWKSet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]token.Key, 0, len(s.keys))
	for _, k := range s.keys {
		keys = append(keys, token.Key{ID: k.ID, Public: k.Public, CreatedAt: k.CreatedAt})
	}
	slices.SortFunc(keys, func(a, b token.Key) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return token.JWKSFor(keys)
}

// Prune deletes expired token records, expired SSO codes and inactive keys
// older than the longest token lifetime (nothing they signed can still be
// valid).
func (s *Service) Prune(ctx context.Context) error {
	now := s.now()
	if _, err := s.st.PruneTokens(ctx, now); err != nil {
		return err
	}
	if _, err := s.st.PruneSSOCodes(ctx, now); err != nil {
		return err
	}
	maxTTL := max(s.cfg.HumanTTL, s.cfg.SystemTTL)
	n, err := s.st.DeleteKeysBefore(ctx, now.Add(-maxTTL))
	if err != nil {
		return err
	}
	if n > 0 {
		return s.loadKeys(ctx)
	}
	return nil
}

func mapStore(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

func newAccountID() string { return uuid.NewString() }
