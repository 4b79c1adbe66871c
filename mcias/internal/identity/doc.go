// Package identity is MCIAS's domain: logins (password, TOTP, policy,
// throttling), token issuance, validation, renewal and revocation, accounts
// and roles, login policy rules, TOTP enrolment, passkeys, SSO codes and
// signing-key rotation. Every transport — the gRPC API with its generated
// REST face, the WebAuthn endpoints, the web UI and the offline commands —
// calls this package, which enforces who may do what itself; its errors
// are mcdsl/apierr kinds (errors.go), so they map to status codes in one
// place.
package identity
