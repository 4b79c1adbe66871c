// Package acme is Metacrypt's ACME server domain (RFC 8555, External
// Account Binding required; RFC 8737 tls-alpn-01; RFC 8738 IP
// identifiers; RFC 9773 renewal information): accounts, orders,
// authorizations and challenges with their state transitions, EAB
// credentials bound to MCIAS identities, nonces, the persisted validation
// queue, finalization and revocation through the pki.Issuer seam, and the
// problem documents. It speaks no HTTP (package httpapi does), opens no
// sockets (a Validator does, package validate) and stores through the
// Store interface (package kvstore, over the CA mount's barrier storage).
package acme
