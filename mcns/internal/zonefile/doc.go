// Package zonefile moves MCNS zones in and out of RFC 1035 master files:
// Import creates a zone and its records from a file, all or nothing, with
// every record held to the same rules as the record API; Export writes a
// served zone back out, which is also how a peer server is given the same
// data.
package zonefile
