// Package server wires mc-proxy together on the mcdsl/service runtime:
// mc-proxy.toml, the SQLite store (seeded from the TOML only when it has
// never held state), the proxy data plane with one component per
// listener, the admin gRPC API on its Unix socket and the metrics
// listener. It also holds what the init, status and snapshot verbs do.
package server
