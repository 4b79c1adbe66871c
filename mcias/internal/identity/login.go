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
// token. Failures are throttled per account name and per source IP.
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
		attempt.Done(true) // not this account's failure
		return Issued{}, errThrottled
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
		return errThrottled
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
