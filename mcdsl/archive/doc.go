// Package archive packs a service's data directory into a zstd-compressed
// tar stream and unpacks one safely. Create captures every SQLite *.db file
// through VACUUM INTO, so an archive taken while the service runs holds a
// consistent database, and leaves out the live WAL and shared-memory files
// and the backups/ directory. Extract treats the stream as untrusted: it
// refuses paths that leave the destination, links, devices and oversized
// entries, writes through an os.Root, and either produces the whole tree or
// leaves the destination untouched.
package archive
