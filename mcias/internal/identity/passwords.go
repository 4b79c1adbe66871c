package identity

import (
	"context"
	"errors"
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

// Every Argon2id computation of the service goes through these three, so
// the gate (Config.Argon2Slots) bounds them all: logins, the unknown-user
// equalizer, password changes and resets, account creation and the
// break-glass recovery. A full gate is errBusy (503 with Retry-After).

// argon runs fn in an Argon2 slot.
func (s *Service) argon(ctx context.Context, fn func()) error {
	err := s.gate.Do(ctx, fn)
	if errors.Is(err, password.ErrBusy) {
		s.logger.Debug("argon2 slots busy: request refused", "slots", s.gate.Slots())
		return errBusy
	}
	return err
}

// verifyPassword is password.Verify in a slot.
func (s *Service) verifyPassword(ctx context.Context, pw, encoded string) (ok bool, err error) {
	if gerr := s.argon(ctx, func() { ok, err = password.Verify(pw, encoded) }); gerr != nil {
		return false, gerr
	}
	return ok, err
}

// burn is the unknown-user equalizer in a slot: the same wait and the
// same work as verifyPassword.
func (s *Service) burn(ctx context.Context, pw string) error {
	return s.argon(ctx, func() { s.equalizer.Burn(pw) })
}

// hashPassword is password.Hash with the configured parameters in a slot;
// a password Hash refuses is invalid input.
func (s *Service) hashPassword(ctx context.Context, pw string) (h string, err error) {
	if gerr := s.argon(ctx, func() { h, err = password.Hash(pw, s.cfg.Argon2) }); gerr != nil {
		return "", gerr
	}
	if err != nil {
		return "", invalid("%v", err)
	}
	return h, nil
}

// ChangePassword lets an account change its own password (id must be the
// caller's), proving the current one. Admins reset other accounts'
// passwords with UpdateAccount. It is a credential change: every token of
// the account is revoked — the one making the call too — and the answer
// is a fresh login token for the caller, so the session that made the
// change goes on while any other (a thief's) ends.
func (s *Service) ChangePassword(ctx context.Context, caller *auth.Identity, id, current, next string) (Issued, error) {
	if id != caller.Subject {
		return Issued{}, fmt.Errorf("%w: only the account itself changes its password; admins reset it with UpdateAccount (REST: PATCH)", ErrForbidden)
	}
	if err := validPassword(next); err != nil {
		return Issued{}, err
	}
	a, err := s.st.GetAccount(ctx, caller.Subject)
	if err != nil {
		return Issued{}, mapStore(err)
	}
	if a.PasswordHash == "" {
		return Issued{}, invalid("this account has no password")
	}
	if err := s.throttled(ctx, a.Username, func() error {
		ok, err := s.verifyPassword(ctx, current, a.PasswordHash)
		if err != nil {
			return err
		}
		if !ok {
			return ErrBadCredentials
		}
		return nil
	}); err != nil {
		return Issued{}, err
	}
	h, err := s.hashPassword(ctx, next)
	if err != nil {
		return Issued{}, err
	}
	verified := a.PasswordHash
	a, err = s.st.UpdateAccount(ctx, a.ID, func(acc *store.Account) error {
		if acc.PasswordHash != verified {
			return fmt.Errorf("%w: the password was changed meanwhile; try again", ErrConflict)
		}
		acc.PasswordHash = h
		s.credentialsChanged(acc)
		return nil
	})
	if err != nil {
		return Issued{}, mapStore(err)
	}
	s.logger.Info("password changed: all tokens of the account revoked", "account", a.ID, "username", a.Username)
	return s.reissue(ctx, a)
}

// credentialsChanged marks a credential change on acc inside a
// store.UpdateAccount: the store revokes every token of the account and
// its unused SSO codes in the same transaction, and tokens issued before
// now no longer validate.
func (s *Service) credentialsChanged(acc *store.Account) {
	now := s.now()
	acc.CredentialsChangedAt = &now
}

// reissue is the fresh token the account gets after changing its own
// credentials (its old ones, including the caller's, were just revoked):
// a login token, as if it had just logged in with the new credentials.
func (s *Service) reissue(ctx context.Context, a *store.Account) (Issued, error) {
	iss, err := s.issue(ctx, a, store.KindLogin, s.cfg.HumanTTL)
	if err != nil {
		return Issued{}, fmt.Errorf("credentials changed, but issuing a new token failed (log in again): %w", err)
	}
	return iss, nil
}
