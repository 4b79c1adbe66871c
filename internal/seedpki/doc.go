// Package seedpki is the platform's seed certificate authority: the root CA
// that exists before Metacrypt does, kept as two files (ca.crt, ca.key) in one
// directory. It issues ECDSA P-256 server/client certificates written as full
// chains under issued/, and reuses them on re-runs while they still fit the
// request, so bootstrapping the platform twice leaves the PKI unchanged.
package seedpki
