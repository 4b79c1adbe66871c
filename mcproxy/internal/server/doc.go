// Package server wires mc-proxy together: mc-proxy.toml, the SQLite store
// (seeded from the TOML only when it has never held state), the proxy data
// plane, the admin gRPC API on its Unix socket and the metrics endpoint.
package server
