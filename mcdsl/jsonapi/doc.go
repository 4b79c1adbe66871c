// Package jsonapi is the JSON plumbing of the hand-written HTTP endpoints
// that are not RPCs (WebAuthn ceremonies and the like): uncacheable JSON
// answers and strict, bounded request decoding. Errors go through
// mcdsl/apierr; every RPC's REST endpoint is generated (mcdsl/gateway).
package jsonapi
