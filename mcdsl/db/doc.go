// Package db opens the SQLite database every platform service keeps its state
// in: WAL mode, foreign keys on, a 5 s busy timeout, ordered idempotent Go
// migrations recorded in schema_migrations, and consistent online snapshots
// through VACUUM INTO. It uses the pure-Go modernc.org/sqlite driver so
// binaries stay CGO_ENABLED=0.
package db
