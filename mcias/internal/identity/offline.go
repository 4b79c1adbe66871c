package identity

import (
	"context"
	"errors"
	"slices"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// Bootstrap creates the first admin and the default login policy when the
// database has no accounts. It reports whether it created anything.
func (s *Service) Bootstrap(ctx context.Context, username, pw string) (bool, error) {
	list, err := s.st.ListAccounts(ctx)
	if err != nil {
		return false, err
	}
	if len(list) > 0 {
		return false, nil
	}
	if _, err := s.createAccount(ctx, CreateAccountRequest{
		Username: username, AccountType: auth.AccountHuman, Password: pw, Roles: []string{auth.RoleAdmin},
	}, "mcias init"); err != nil {
		return false, err
	}
	rules, err := s.st.ListPolicies(ctx)
	if err != nil {
		return false, err
	}
	if len(rules) == 0 {
		if _, err := s.st.CreatePolicy(ctx, policy.Rule{
			Priority: 1000, Effect: policy.Allow, Actions: []string{policy.ActionLogin},
			Description: "default: allow every active account to log in; tighten with higher-priority rules",
		}); err != nil {
			return false, err
		}
	}
	return true, nil
}

// RecoverAdmin is the break-glass path for an operator with access to the
// database file (the "mcias recover-admin" command, never an API): it makes
// username an active human admin with the given password, creating the
// account if needed, and clears its TOTP. If login policy would deny an
// admin logging in with mciasctl, it adds an allow rule for that at
// priority -1 — below anything the API accepts, so it is evaluated first —
// and reports it, so the operator can log in and repair the policy. For an
// existing account it is a credential change: all its tokens are revoked.
func (s *Service) RecoverAdmin(ctx context.Context, username, pw string) (addedRule bool, err error) {
	if err := validPassword(pw); err != nil {
		return false, err
	}
	a, err := s.st.GetAccountByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := s.createAccount(ctx, CreateAccountRequest{
			Username: username, AccountType: auth.AccountHuman, Password: pw, Roles: []string{auth.RoleAdmin},
		}, "mcias recover-admin"); err != nil {
			return false, err
		}
	case err != nil:
		return false, err
	case a.Type != auth.AccountHuman:
		return false, invalid("%s is a system account", username)
	default:
		h, err := s.hashPassword(ctx, pw)
		if err != nil {
			return false, err
		}
		if _, err := s.st.UpdateAccount(ctx, a.ID, func(acc *store.Account) error {
			acc.PasswordHash, acc.Status = h, store.StatusActive
			acc.TOTPEnabled, acc.TOTPSecret, acc.TOTPLastStep = false, "", 0
			s.credentialsChanged(acc) // revokes every token of the account
			if !slices.Contains(acc.Roles, auth.RoleAdmin) {
				acc.Roles = append(acc.Roles, auth.RoleAdmin)
			}
			return nil
		}); err != nil {
			return false, err
		}
	}
	s.logger.Warn("admin recovered offline", "username", username)
	rules, err := s.st.ListPolicies(ctx)
	if err != nil {
		return false, err
	}
	req := policy.Request{Roles: []string{auth.RoleAdmin}, AccountType: auth.AccountHuman, Action: policy.ActionLogin, ServiceName: "mciasctl"}
	if policy.Evaluate(rules, req).Allow {
		return false, nil
	}
	if _, err := s.st.CreatePolicy(ctx, policy.Rule{
		Priority: -1, Effect: policy.Allow, Roles: []string{auth.RoleAdmin}, Actions: []string{policy.ActionLogin},
		ServiceNames: []string{"mciasctl"}, Description: "break-glass rule added by mcias recover-admin; delete it once the policy is repaired",
	}); err != nil {
		return false, err
	}
	return true, nil
}

// EnsureSystemAccount is the offline provisioning path for an operator (or
// the local launcher) with access to the database file (the "mcias
// system-account" command, never an API): it creates the system account
// username if it does not exist and issues it a fresh system token with
// the given lifetime (0: the configured system_ttl). An existing account
// must be an active system account; its older tokens stay valid. created
// reports whether the account was new.
func (s *Service) EnsureSystemAccount(ctx context.Context, username string, ttl time.Duration) (created bool, iss Issued, err error) {
	if ttl <= 0 {
		ttl = s.cfg.SystemTTL
	}
	if ttl > s.cfg.SystemTTL {
		return false, Issued{}, invalid("ttl %s exceeds the maximum %s", ttl, s.cfg.SystemTTL)
	}
	a, err := s.st.GetAccountByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := s.createAccount(ctx, CreateAccountRequest{Username: username, AccountType: auth.AccountSystem}, "mcias system-account"); err != nil {
			return false, Issued{}, err
		}
		if a, err = s.st.GetAccountByUsername(ctx, username); err != nil {
			return false, Issued{}, err
		}
		created = true
	case err != nil:
		return false, Issued{}, err
	case a.Type != auth.AccountSystem:
		return false, Issued{}, invalid("%s is a %s account, not a system account", username, a.Type)
	case a.Status != store.StatusActive:
		return false, Issued{}, invalid("system account %s is disabled", username)
	}
	iss, err = s.issue(ctx, a, store.KindSystem, ttl)
	if err != nil {
		return false, Issued{}, err
	}
	s.logger.Info("system token issued", "account", a.Username, "by", "mcias system-account", "expires_at", iss.ExpiresAt)
	return created, iss, nil
}
