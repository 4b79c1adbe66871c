// Package httpapi is the ACME server's HTTP face (RFC 8555 §7): the
// routes of one directory per CA issuer, under
// /v1/pki/{mount}/acme/{issuer}/, and the JWS checks every POST goes
// through as stacked steps chosen per route (step-ca's middleware):
// media type, JWS form and algorithm, url, nonce, then the key — an
// embedded jwk for newAccount, an account kid for everything else, either
// for revokeCert — and the signature; POST-as-GET routes refuse a
// payload. Every absolute URL comes from one linker built from the
// request's host. Handlers translate to acme.Service calls and back, and
// hold no rules of their own.
package httpapi
