// Package totp implements the second factor MCIAS offers: RFC 6238 time-based
// one-time passwords with the parameters every authenticator app uses (HMAC-
// SHA-1, 6 digits, 30-second steps), the otpauth:// URI that enrols an app,
// and single-use recovery codes for when the device is lost. Validate reports
// the step it matched so the caller can store it and refuse a replayed code.
package totp
