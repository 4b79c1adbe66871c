package identity

import (
	"context"
	"fmt"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/totp"
)

// TOTPEnrollment is a pending TOTP secret to show the user once.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

func selfOrAdmin(caller *auth.Identity, id string) error {
	if caller.Subject != id && !caller.IsAdmin() {
		return ErrForbidden
	}
	return nil
}

// EnrollTOTP creates a new, not yet active TOTP secret for the caller's own
// account. It becomes required only after ConfirmTOTP.
func (s *Service) EnrollTOTP(ctx context.Context, caller *auth.Identity, id string) (TOTPEnrollment, error) {
	if caller.Subject != id {
		return TOTPEnrollment{}, ErrForbidden
	}
	secret, err := totp.GenerateSecret()
	if err != nil {
		return TOTPEnrollment{}, err
	}
	a, err := s.st.UpdateAccount(ctx, id, func(a *store.Account) error {
		if a.TOTPEnabled {
			return fmt.Errorf("%w: TOTP is already enabled; disable it first", ErrConflict)
		}
		a.TOTPSecret, a.TOTPLastStep = secret, 0
		return nil
	})
	if err != nil {
		return TOTPEnrollment{}, mapStore(err)
	}
	return TOTPEnrollment{Secret: secret, URI: totp.URI(secret, s.cfg.Issuer, a.Username)}, nil
}

// RecoveryCodeCount is how many single-use recovery codes ConfirmTOTP makes.
const RecoveryCodeCount = 10

// ConfirmTOTP activates a pending secret with a valid code and returns the
// recovery codes (shown once; only their hashes are kept). Turning TOTP on
// is a credential change: every token of the account is revoked — sessions
// someone opened with the password alone end — and the caller gets a fresh
// login token in their place.
func (s *Service) ConfirmTOTP(ctx context.Context, caller *auth.Identity, id, code string) ([]string, Issued, error) {
	if caller.Subject != id {
		return nil, Issued{}, ErrForbidden
	}
	a, err := s.st.GetAccount(ctx, id)
	if err != nil {
		return nil, Issued{}, mapStore(err)
	}
	if a.TOTPEnabled {
		return nil, Issued{}, fmt.Errorf("%w: TOTP is already enabled", ErrConflict)
	}
	if a.TOTPSecret == "" {
		return nil, Issued{}, invalid("no pending TOTP enrolment; enroll first")
	}
	step, ok := totp.Validate(a.TOTPSecret, code, s.now(), a.TOTPLastStep)
	if !ok {
		return nil, Issued{}, invalid("the code does not match; check the device clock and try the next code")
	}
	codes, err := totp.GenerateRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		return nil, Issued{}, err
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = totp.HashRecoveryCode(c)
	}
	if err := s.st.ReplaceRecoveryCodes(ctx, id, hashes); err != nil {
		return nil, Issued{}, err
	}
	a, err = s.st.UpdateAccount(ctx, id, func(acc *store.Account) error {
		if acc.TOTPEnabled {
			return fmt.Errorf("%w: TOTP is already enabled", ErrConflict)
		}
		acc.TOTPEnabled, acc.TOTPLastStep = true, step
		s.credentialsChanged(acc)
		return nil
	})
	if err != nil {
		return nil, Issued{}, mapStore(err)
	}
	s.logger.Info("totp enabled: all tokens of the account revoked", "account", a.ID, "username", a.Username)
	iss, err := s.reissue(ctx, a)
	if err != nil {
		return nil, Issued{}, err
	}
	return codes, iss, nil
}

// DisableTOTP turns TOTP off: an admin for any account (device lost), or the
// account itself with a current code or a recovery code. Turning an enabled
// TOTP off is a credential change: every token of the account is revoked.
// When the caller turned off its own TOTP, the answer is a fresh login
// token for it; an admin acting on another account gets none (zero Issued).
func (s *Service) DisableTOTP(ctx context.Context, caller *auth.Identity, id, code string) (Issued, error) {
	if err := selfOrAdmin(caller, id); err != nil {
		return Issued{}, err
	}
	a, err := s.st.GetAccount(ctx, id)
	if err != nil {
		return Issued{}, mapStore(err)
	}
	if !caller.IsAdmin() || caller.Subject == id {
		if a.TOTPEnabled {
			if err := s.throttled(ctx, a.Username, func() error { return s.checkSecondFactor(ctx, a, code) }); err != nil {
				return Issued{}, err
			}
		}
	}
	changed := false
	a, err = s.st.UpdateAccount(ctx, id, func(acc *store.Account) error {
		if acc.TOTPEnabled {
			changed = true
			s.credentialsChanged(acc)
		}
		acc.TOTPEnabled, acc.TOTPSecret, acc.TOTPLastStep = false, "", 0
		return nil
	})
	if err != nil {
		return Issued{}, mapStore(err)
	}
	if err := s.st.ReplaceRecoveryCodes(ctx, id, nil); err != nil {
		return Issued{}, err
	}
	s.logger.Info("totp disabled", "account", a.ID, "username", a.Username, "tokens_revoked", changed, "by", caller.Username)
	if !changed || caller.Subject != id {
		return Issued{}, nil
	}
	return s.reissue(ctx, a)
}

// checkSecondFactor accepts a TOTP code (each step once) or an unused
// recovery code (once).
func (s *Service) checkSecondFactor(ctx context.Context, a *store.Account, code string) error {
	if step, ok := totp.Validate(a.TOTPSecret, code, s.now(), a.TOTPLastStep); ok {
		won, err := s.st.AdvanceTOTPStep(ctx, a.ID, step)
		if err != nil {
			return err
		}
		if won {
			return nil
		}
		return ErrBadCredentials
	}
	if len(totp.NormalizeRecoveryCode(code)) >= 12 {
		used, err := s.st.UseRecoveryCode(ctx, a.ID, totp.HashRecoveryCode(code))
		if err != nil {
			return err
		}
		if used {
			s.logger.Warn("recovery code used", "username", a.Username)
			return nil
		}
	}
	return ErrBadCredentials
}
