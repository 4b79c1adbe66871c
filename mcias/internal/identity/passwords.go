package identity

import (
	"context"
	"fmt"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/password"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// MinPasswordLength is the shortest password accepted for an account.
const MinPasswordLength = 12

func validPassword(pw string) error {
	if len(pw) < MinPasswordLength {
		return invalid("password must be at least %d characters", MinPasswordLength)
	}
	if len(pw) > 1024 {
		return invalid("password must be at most 1024 bytes")
	}
	return nil
}

// ChangePassword lets an account change its own password (id must be the
// caller's), proving the current one. Admins reset other accounts'
// passwords with UpdateAccount.
func (s *Service) ChangePassword(ctx context.Context, caller *auth.Identity, id, current, next string) error {
	if id != caller.Subject {
		return fmt.Errorf("%w: only the account itself changes its password; admins reset it with UpdateAccount (REST: PATCH)", ErrForbidden)
	}
	if err := validPassword(next); err != nil {
		return err
	}
	a, err := s.st.GetAccount(ctx, caller.Subject)
	if err != nil {
		return mapStore(err)
	}
	if a.PasswordHash == "" {
		return invalid("this account has no password")
	}
	if err := s.throttled(a.Username, func() error {
		ok, err := password.Verify(current, a.PasswordHash)
		if err != nil {
			return err
		}
		if !ok {
			return ErrBadCredentials
		}
		return nil
	}); err != nil {
		return err
	}
	h, err := password.Hash(next, s.cfg.Argon2)
	if err != nil {
		return invalid("%v", err)
	}
	_, err = s.st.UpdateAccount(ctx, a.ID, func(acc *store.Account) error { acc.PasswordHash = h; return nil })
	if err == nil {
		s.logger.Info("password changed", "username", a.Username)
	}
	return err
}
