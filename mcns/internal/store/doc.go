// Package store keeps MCNS zones and records in SQLite. Every change runs in
// one transaction that also bumps the zone's SOA serial (YYYYMMDDnn) and
// enforces CNAME exclusivity, so a reader never sees a record set without
// its serial change and two writers cannot both add conflicting names.
// Registered change listeners run after each commit, which is how the DNS
// server serves a change immediately.
package store
