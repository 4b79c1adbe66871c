// Package server runs Metacrypt: it loads metacrypt.toml, opens the store
// and the (sealed) barrier, and serves the API over gRPC and its REST
// face generated from the same proto, plus the hand-written public CA
// endpoints (root, chain, issuer certificates, CRLs, OCSP). The handlers
// only translate between the wire and the domain packages (barrier,
// mount, policy, the CA engine), whose errors become statuses in one
// place (mcdsl/grpcserver and mcdsl/gateway).
package server
