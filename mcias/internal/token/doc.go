// Package token issues and verifies MCIAS bearer tokens: compact JWTs signed
// with Ed25519 (alg EdDSA) carrying the claims of PLATFORM.md §5, and the JWKS
// document that publishes the verification keys. The parser is hand-written
// and deliberately strict — one algorithm, no unknown header or claim fields,
// canonical base64url — because every service on the platform trusts what it
// accepts.
package token
