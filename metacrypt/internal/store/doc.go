// Package store is Metacrypt's SQLite database. It keeps opaque bytes for
// the barrier (the wrapped master key, the wrapped data keys, the
// encrypted secrets) and knows no cryptography; and it keeps the CA's
// public material in the clear (issued certificates, the root and issuer
// certificates, CRLs), so the public CA endpoints, certificate lookups
// and listings work while the barrier is sealed, and a copy of each SSH
// CA's public key and KRL for the public SSH endpoints.
package store
