package meta

import (
	"context"
	"database/sql"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// migrations are MCR's schema, in order.
var migrations = []db.Migration{{
	Version: 1, Name: "registry",
	Up: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
CREATE TABLE repositories (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	created_at TEXT NOT NULL
);
-- blobs are the committed files of the content store; used_at is the last
-- time one was committed, linked or referenced (the GC grace clock).
CREATE TABLE blobs (
	digest TEXT PRIMARY KEY,
	size INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	used_at TEXT NOT NULL
);
CREATE TABLE repository_blobs (
	repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
	created_at TEXT NOT NULL,
	PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);
CREATE TABLE manifests (
	repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	digest TEXT NOT NULL,
	media_type TEXT NOT NULL,
	artifact_type TEXT NOT NULL,
	config_media_type TEXT NOT NULL,
	subject TEXT NOT NULL,
	annotations TEXT NOT NULL,
	size INTEGER NOT NULL,
	content BLOB NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repository_id, subject) WHERE subject != '';
-- manifest_refs: what each manifest references; kind 'blob' (config,
-- layers) or 'manifest' (index children).
CREATE TABLE manifest_refs (
	repository_id INTEGER NOT NULL,
	manifest_digest TEXT NOT NULL,
	digest TEXT NOT NULL,
	kind TEXT NOT NULL,
	PRIMARY KEY (repository_id, manifest_digest, kind, digest),
	FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_refs_digest ON manifest_refs(digest, kind);
CREATE TABLE tags (
	repository_id INTEGER NOT NULL,
	name TEXT NOT NULL,
	digest TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (repository_id, name),
	FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_digest ON tags(repository_id, digest);
CREATE TABLE uploads (
	id TEXT PRIMARY KEY,
	repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
	algorithm TEXT NOT NULL,
	size INTEGER NOT NULL,
	hash_state BLOB NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE TABLE policies (
	id INTEGER PRIMARY KEY,
	priority INTEGER NOT NULL,
	effect TEXT NOT NULL,
	repository TEXT NOT NULL,
	accounts TEXT NOT NULL,
	roles TEXT NOT NULL,
	account_types TEXT NOT NULL,
	actions TEXT NOT NULL,
	description TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE TABLE audit_events (
	id INTEGER PRIMARY KEY,
	at TEXT NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	repository TEXT NOT NULL,
	reference TEXT NOT NULL,
	digest TEXT NOT NULL,
	remote TEXT NOT NULL,
	detail TEXT NOT NULL
);
CREATE INDEX audit_events_repository ON audit_events(repository, id);
`)
		return err
	},
}}
