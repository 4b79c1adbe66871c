package identity

import (
	"errors"
	"fmt"

	"git.metacircular.net/metacircular/mcdsl/auth"
)

// Errors the transports map to status codes (see server.statusOf).
var (
	// ErrBadCredentials: unknown user, wrong password, wrong second factor
	// or disabled account — deliberately indistinguishable.
	ErrBadCredentials = errors.New("invalid credentials")
	// ErrTOTPRequired: the password was right and a TOTP code is needed.
	ErrTOTPRequired = errors.New("totp code required")
	ErrPolicyDenied = errors.New("login denied by policy")
	ErrThrottled    = errors.New("too many failed attempts; try again later")
	// ErrInvalidToken is mcdsl/auth's sentinel, so auth.Middleware and
	// auth.StatusCode map it to 401 for MCIAS's own API too.
	ErrInvalidToken = auth.ErrInvalidToken
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrInvalid      = errors.New("invalid request")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
