// Package grpcserver runs a service's gRPC API over TLS 1.3 behind the
// platform's method maps. Every method must appear in exactly one access
// map (public, auth-required or admin-required); a method in none is denied,
// so a forgotten RPC is a visible failure instead of an open door. Methods in
// the seal-required map additionally answer Unavailable while the service is
// sealed. The gRPC health service is registered and public by default.
package grpcserver
