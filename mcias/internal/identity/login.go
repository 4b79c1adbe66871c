package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcias/internal/password"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/throttle"
)

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
// token. Failures are throttled per account name and per source IP: each
// attempt reserves a slot under both before anything is checked and ends
// as a failure (a password or second factor was checked and was wrong), a
// success (password and, when enabled, the second factor verified: the
// only outcome that clears the account's failures) or withdrawn (nothing
// was settled: refused by the other limit, the server too busy to hash,
// login policy saying no to a correct credential). Log lines name the
// account by ID, never by the name as typed, which may be a password typed
// into the wrong field.
func (s *Service) Login(ctx context.Context, req LoginRequest) (Issued, error) {
	if err := validateLoginInput(req); err != nil {
		return Issued{}, err
	}
	name := strings.ToLower(req.Username)
	attempt, ok := s.acct.Begin("acct:" + name)
	if !ok {
		return Issued{}, errThrottled
	}
	ipAttempt, ok := s.ip.Begin(ipKey(req.RemoteIP))
	if !ok {
		attempt.Done(throttle.Withdrawn) // refused by the address limit: no guess was checked
		return Issued{}, errThrottled
	}
	outcome := throttle.Failed
	defer func() {
		attempt.Done(outcome)
		ipAttempt.Done(outcome)
	}()

	a, err := s.st.GetAccountByUsername(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Issued{}, err
	}
	if a == nil || a.Status != store.StatusActive || a.PasswordHash == "" {
		if err := s.burn(ctx, req.Password); err != nil {
			outcome = throttle.Withdrawn
			return Issued{}, err
		}
		reason := "unknown account"
		if a != nil {
			reason = "account disabled or without a password"
		}
		s.logLoginFailure(a, req, reason)
		return Issued{}, ErrBadCredentials
	}
	okPw, err := s.verifyPassword(ctx, req.Password, a.PasswordHash)
	if errors.Is(err, ErrBusy) || ctx.Err() != nil {
		outcome = throttle.Withdrawn
		return Issued{}, err
	}
	if err != nil {
		return Issued{}, fmt.Errorf("login: stored hash of account %s: %w", a.ID, err)
	}
	if !okPw {
		s.logLoginFailure(a, req, "wrong password")
		return Issued{}, ErrBadCredentials
	}
	if a.TOTPEnabled {
		if req.TOTPCode == "" {
			// Counted: the different answer tells the caller the password
			// was right, so it must cost a guess like a wrong one.
			return Issued{}, ErrTOTPRequired
		}
		if err := s.checkSecondFactor(ctx, a, req.TOTPCode); err != nil {
			s.logLoginFailure(a, req, "wrong second factor")
			return Issued{}, err
		}
	}
	// The credentials are right from here on: a policy denial is not a
	// guess, nor is it the owner getting in.
	if err := s.checkPolicy(ctx, a, policy.ActionLogin, req.ServiceName, req.Tags); err != nil {
		outcome = throttle.Withdrawn
		return Issued{}, err
	}
	outcome = throttle.Succeeded
	if password.NeedsRehash(a.PasswordHash, s.cfg.Argon2) {
		if h, err := s.hashPassword(ctx, req.Password); err == nil {
			_, _ = s.st.UpdateAccount(ctx, a.ID, func(acc *store.Account) error {
				if acc.PasswordHash != a.PasswordHash {
					return errCredentialsChanged // changed meanwhile: keep the newer password
				}
				acc.PasswordHash = h
				return nil
			})
		}
	}
	iss, err := s.issue(ctx, a, store.KindLogin, s.cfg.HumanTTL)
	if errors.Is(err, errCredentialsChanged) {
		// The password was changed while this login checked the old one.
		outcome = throttle.Withdrawn
		s.logLoginFailure(a, req, "credentials changed during the login")
		return Issued{}, ErrBadCredentials
	}
	if err != nil {
		return Issued{}, err
	}
	s.logger.Info("login", "account", a.ID, "username", a.Username, "service_name", req.ServiceName, "remote", req.RemoteIP)
	return iss, nil
}

// logLoginFailure logs a refused login by the account's ID and stored
// username when the typed name names an account, and as "unknown"
// otherwise: the typed name is never logged, since people type passwords
// into username fields and logs are kept and shipped.
func (s *Service) logLoginFailure(a *store.Account, req LoginRequest, reason string) {
	if a == nil {
		s.logger.Info("login failed", "account", "unknown", "reason", reason,
			"service_name", req.ServiceName, "remote", req.RemoteIP)
		return
	}
	s.logger.Info("login failed", "account", a.ID, "username", a.Username, "reason", reason,
		"service_name", req.ServiceName, "remote", req.RemoteIP)
}

// throttled runs check (a password or second-factor verification for an
// already authenticated caller) under the account's failed-attempt limit,
// so a stolen token cannot be used to guess the password or a TOTP code.
// A failed check counts; a passing one does not clear the account's
// failures (it proves one factor, not a login), and a check the server was
// too busy to run is withdrawn.
func (s *Service) throttled(ctx context.Context, username string, check func() error) error {
	attempt, ok := s.acct.Begin("acct:" + strings.ToLower(username))
	if !ok {
		return errThrottled
	}
	err := check()
	switch {
	case err == nil, errors.Is(err, ErrBusy), ctx.Err() != nil:
		attempt.Done(throttle.Withdrawn)
	default:
		attempt.Done(throttle.Failed)
	}
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
		s.logger.Info("login denied by policy", "account", a.ID, "username", a.Username, "service_name", serviceName, "rule", d.RuleID, "reason", d.Reason)
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
