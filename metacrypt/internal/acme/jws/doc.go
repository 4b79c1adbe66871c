// Package jws parses and verifies the JSON Web Signatures of ACME (RFC
// 8555 §6.2): the flattened JSON serialization only, one signature, a
// protected header and no unprotected one, with the account key as a JWK
// (RFC 7517) or a key ID. It also checks External Account Binding MACs
// (§7.3.4, HS256) and computes JWK thumbprints (RFC 7638).
//
// It is hand-written rather than built on a general JOSE library on
// purpose: ACME needs one serialization, four signature algorithms and
// one MAC, and every request is untrusted input, so a small parser whose
// every accepted form is listed here (and fuzzed by FuzzParse) is easier
// to trust than a library that also accepts compact and general
// serializations, JWE, "none", unencoded payloads and critical extensions
// we would have to turn off one by one. It imports nothing of Metacrypt.
package jws
