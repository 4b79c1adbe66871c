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
// recovery codes (shown once; only their hashes are kept).
func (s *Service) ConfirmTOTP(ctx context.Context, caller *auth.Identity, id, code string) ([]string, error) {
	if caller.Subject != id {
		return nil, ErrForbidden
	}
	a, err := s.st.GetAccount(ctx, id)
	if err != nil {
		return nil, mapStore(err)
	}
	if a.TOTPEnabled {
		return nil, fmt.Errorf("%w: TOTP is already enabled", ErrConflict)
	}
	if a.TOTPSecret == "" {
		return nil, invalid("no pending TOTP enrolment; enroll first")
	}
	step, ok := totp.Validate(a.TOTPSecret, code, s.now(), a.TOTPLastStep)
	if !ok {
		return nil, invalid("the code does not match; check the device clock and try the next code")
	}
	codes, err := totp.GenerateRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		return nil, err
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = totp.HashRecoveryCode(c)
	}
	if err := s.st.ReplaceRecoveryCodes(ctx, id, hashes); err != nil {
		return nil, err
	}
	if _, err := s.st.UpdateAccount(ctx, id, func(acc *store.Account) error {
		acc.TOTPEnabled, acc.TOTPLastStep = true, step
		return nil
	}); err != nil {
		return nil, mapStore(err)
	}
	s.logger.Info("totp enabled", "username", a.Username)
	return codes, nil
}

// DisableTOTP turns TOTP off: an admin for any account (device lost), or the
// account itself with a current code or a recovery code.
func (s *Service) DisableTOTP(ctx context.Context, caller *auth.Identity, id, code string) error {
	if err := selfOrAdmin(caller, id); err != nil {
		return err
	}
	a, err := s.st.GetAccount(ctx, id)
	if err != nil {
		return mapStore(err)
	}
	if !caller.IsAdmin() || caller.Subject == id {
		if a.TOTPEnabled {
			if err := s.throttled(a.Username, func() error { return s.checkSecondFactor(ctx, a, code) }); err != nil {
				return err
			}
		}
	}
	if _, err := s.st.UpdateAccount(ctx, id, func(acc *store.Account) error {
		acc.TOTPEnabled, acc.TOTPSecret, acc.TOTPLastStep = false, "", 0
		return nil
	}); err != nil {
		return mapStore(err)
	}
	if err := s.st.ReplaceRecoveryCodes(ctx, id, nil); err != nil {
		return err
	}
	s.logger.Info("totp disabled", "username", a.Username, "by", caller.Username)
	return nil
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
