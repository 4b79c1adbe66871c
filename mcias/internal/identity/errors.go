package identity

import (
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
)

// The domain's errors, each of an mcdsl/apierr kind, which the transports
// (the gRPC interceptor and the REST gateway generated from the same
// proto) turn into status codes in one place. The opaque ones show callers
// only their own text, whatever detail wraps them: a caller must not learn
// why credentials were refused or what exactly it may not do.
var (
	// ErrBadCredentials: unknown user, wrong password, wrong second factor
	// or disabled account — deliberately indistinguishable.
	ErrBadCredentials = apierr.Opaque(apierr.Unauthenticated, "invalid credentials")
	// ErrTOTPRequired: the password was right and a TOTP code is needed.
	ErrTOTPRequired = apierr.Opaque(apierr.Unauthenticated, "totp code required")
	// ErrPolicyDenied: the credentials were right, login policy says no.
	ErrPolicyDenied = apierr.Opaque(apierr.Denied, "login denied by policy")
	// ErrThrottled: too many failures for the account or the source
	// address. Login returns it wrapped with a retry delay (RetryAfter).
	ErrThrottled = apierr.Opaque(apierr.Throttled, "too many failed attempts; try again later")
	// ErrBusy: every Argon2 slot stayed taken for the whole wait
	// (Config.Argon2Slots, Argon2MaxWait): the server is too busy hashing
	// passwords to check this one. Returned wrapped with a retry delay
	// (BusyRetryAfter). Nothing was checked, so it is no throttle failure.
	ErrBusy = apierr.Opaque(apierr.Unavailable, "too many password checks in progress; try again shortly")
	// ErrInvalidToken: a token that fails any check (signature, expiry,
	// revocation, account state).
	ErrInvalidToken error = invalidToken{apierr.Opaque(apierr.Unauthenticated, auth.ErrInvalidToken.Error())}
	// ErrForbidden: the caller may not do this (not an admin, not the
	// account itself).
	ErrForbidden = apierr.Opaque(apierr.Denied, "forbidden")
	// ErrNotFound, ErrConflict and ErrInvalid show their detail: "not
	// found: ...", "conflict: ...", "invalid request: ...".
	ErrNotFound = apierr.New(apierr.NotFound, "not found")
	ErrConflict = apierr.New(apierr.Conflict, "conflict")
	ErrInvalid  = apierr.New(apierr.Invalid, "invalid request")
)

// RetryAfter is how long a throttled caller is told to wait (the REST
// Retry-After header, the gRPC RetryInfo detail). The failures age out
// over the throttle window; a minute is a fair first wait.
const RetryAfter = 60 * time.Second

// errThrottled is ErrThrottled as returned: with the retry delay.
var errThrottled = apierr.WithRetry(ErrThrottled, RetryAfter)

// BusyRetryAfter is how long a caller refused with ErrBusy is told to wait
// (Retry-After, RetryInfo): a hash takes a fraction of a second, so a
// slot is likely free again by then.
const BusyRetryAfter = time.Second

// errBusy is ErrBusy as returned: with the retry delay.
var errBusy = apierr.WithRetry(ErrBusy, BusyRetryAfter)

// invalidToken is ErrInvalidToken: Unauthenticated for the API, and also
// mcdsl/auth's ErrInvalidToken, so auth.Middleware (which guards the
// hand-written WebAuthn endpoints with this service as its validator)
// answers 401 for it too.
type invalidToken struct{ *apierr.Sentinel }

func (e invalidToken) Unwrap() []error { return []error{e.Sentinel, auth.ErrInvalidToken} }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
