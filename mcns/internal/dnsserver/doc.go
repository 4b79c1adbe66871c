// Package dnsserver is the DNS side of MCNS: it answers authoritatively over
// UDP and TCP for the zones in the store, kept in memory and reloaded after
// every committed change, and forwards every other name to upstream
// resolvers, in order and through a TTL-honouring cache, for clients in the
// recursion networks only. DNS.md beside the service describes the answers
// it gives.
package dnsserver
