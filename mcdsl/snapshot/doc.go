// Package snapshot is the platform's standard way to snapshot a service's
// database: Take vacuums the live SQLite database into a timestamped file in
// the service's backups directory, Prune keeps the newest few, and the same
// operation is exposed as the mcdsl.v1.SnapshotService gRPC method (Server)
// and as the `snapshot` CLI verb every service binary mounts (Command).
package snapshot
