// Package store is mc-proxy's SQLite state: routes and firewall rules.
// The database is the single source of truth at run time; mc-proxy.toml
// only seeds a database that has never held state, and Diff reports where
// the TOML and the database disagree so the divergence is never silent.
package store
