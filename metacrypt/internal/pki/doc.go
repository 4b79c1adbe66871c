// Package pki holds the CA engine's data types — key types, profiles,
// revocation reasons, issuer settings, certificate records, the result of
// an issuance — and Issuer, the interface through which other code in the
// process (the ACME server) obtains certificates. It has no transport
// imports: the gRPC handlers, the public HTTP endpoints, the store and
// the ACME server all depend on it, and the CA engine implements it.
package pki
