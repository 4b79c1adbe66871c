// Package auth is the client side of MCIAS, the platform's identity service:
// it logs users in, validates bearer tokens (caching each answer for 30
// seconds under the SHA-256 of the token, never the token itself), carries
// the caller's identity in the request context, and provides the HTTP
// middleware that services put in front of their REST APIs.
package auth
