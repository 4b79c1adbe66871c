// Package meta is MCR's SQLite store: repositories, committed blobs and
// their per-repository links, manifests with the digests they reference,
// tags, upload sessions, access rules and the audit log. Every change that
// must be atomic with the blob store (committing an upload, garbage
// collecting a blob) runs inside one of its write transactions, which
// SQLite serializes across processes, so `mcr gc` and the server can run
// at the same time.
package meta
