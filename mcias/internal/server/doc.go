// Package server runs MCIAS: Build constructs it on the platform's service
// runtime (mcdsl/service). The API is mcias.v1 (proto/mcias/v1): the gRPC
// handlers translate and call identity.Service, which decides every rule,
// and return its errors as they are, so the interceptor maps them (through
// mcdsl/apierr) in one place; the REST API is generated from the same proto
// (http.yaml) and served in process. Hand-written HTTP is only what is not
// an RPC (routes.go): the JWKS document, SSO's browser step, the WebAuthn
// ceremonies and the web UI. admin.go holds the operator's offline
// commands.
package server
