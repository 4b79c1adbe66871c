// Package identity is MCIAS's domain: logins (password, TOTP, policy,
// throttling), token issuance, validation, renewal and revocation, accounts
// and roles, login policy rules, TOTP enrolment and signing-key rotation.
// REST and gRPC handlers both call this package, so the two APIs cannot
// drift apart; it enforces who may do what itself.
package identity
