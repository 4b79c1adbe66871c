// Package ca is the CA engine: a two-tier PKI per "ca" mount. The root
// (generated, or imported so that what it already signed keeps
// validating) signs named intermediate issuers, which sign leaf
// certificates: issued with a server-side key returned once, signed from
// a CSR, renewed for the same key, revoked with a reason, listed and
// searched. It builds each issuer's CRL and answers OCSP.
//
// Private keys live in the barrier (kind "ca", key "root" or the
// issuer's name, encrypted under the mount's data key) and are read,
// used and dropped for each signature; nothing secret stays in memory.
// Certificates are public material and are recorded in the clear by the
// store, so the public endpoints and lookups work while sealed.
//
// Every operation is authorized here, for every entry point alike (the
// typed gRPC/REST API, the generic engine request and, through
// pki.Issuer, the ACME server): the caller's ACL rules for the operation
// and resource, then its issuance limits on every name.
package ca
