// Package server runs MCNS: it loads mcns.toml, seeds the configured zones,
// serves DNS (package dnsserver) and exposes the record API over REST (chi)
// and gRPC. The API handlers only translate: they decode and bound the
// input, call the same records.Service method, and map its errors to status
// codes in one place (statusOf / grpcStatus), so the two APIs answer alike.
package server
