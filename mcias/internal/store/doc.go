// Package store keeps MCIAS state in SQLite: accounts and their roles,
// signing keys, issued and revoked tokens, login policy rules, TOTP state and
// recovery codes. Every multi-row change is one transaction, and the
// replay-sensitive updates (a TOTP step, a recovery code) are single
// conditional statements so parallel requests cannot both succeed.
package store
