package store

import (
	"context"
	"database/sql"

	"git.metacircular.net/metacircular/mcdsl/db"
)

func exec(stmts ...string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
}

// migrations is the MCIAS schema history, in version order; append only.
var migrations = []db.Migration{
	migrationInitial,
	migrationPasskeys,
	migrationSSO,
	migrationCredentialsChanged,
}

// migrationCredentialsChanged records when an account's credentials (its
// password, or whether TOTP is on) last changed: tokens issued before that
// are invalid (identity), and minting a token is conditional on it not
// having moved since the credentials were checked (RecordToken).
var migrationCredentialsChanged = db.Migration{Version: 4, Name: "credentials changed at", Up: exec(
	`ALTER TABLE accounts ADD COLUMN credentials_changed_at TEXT`,
)}

var migrationInitial = db.Migration{Version: 1, Name: "initial schema", Up: exec(
	`CREATE TABLE accounts (
			id             TEXT PRIMARY KEY,
			username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
			account_type   TEXT NOT NULL CHECK (account_type IN ('human', 'system')),
			password_hash  TEXT NOT NULL DEFAULT '',
			status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
			totp_secret    TEXT NOT NULL DEFAULT '',
			totp_enabled   INTEGER NOT NULL DEFAULT 0,
			totp_last_step INTEGER NOT NULL DEFAULT 0,
			created_at     TEXT NOT NULL,
			updated_at     TEXT NOT NULL
		)`,
	`CREATE TABLE account_roles (
			account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
			role       TEXT NOT NULL CHECK (role IN ('admin', 'user', 'guest')),
			PRIMARY KEY (account_id, role)
		)`,
	`CREATE TABLE signing_keys (
			kid         TEXT PRIMARY KEY,
			private_key BLOB NOT NULL,
			public_key  BLOB NOT NULL,
			created_at  TEXT NOT NULL,
			active      INTEGER NOT NULL DEFAULT 0
		)`,
	`CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys(active) WHERE active = 1`,
	`CREATE TABLE tokens (
			jti        TEXT PRIMARY KEY,
			account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
			kind       TEXT NOT NULL CHECK (kind IN ('login', 'renew', 'system', 'sso')),
			issued_at  TEXT NOT NULL,
			expires_at TEXT NOT NULL,
			revoked_at TEXT
		)`,
	`CREATE INDEX tokens_account ON tokens(account_id)`,
	`CREATE INDEX tokens_expires ON tokens(expires_at)`,
	`CREATE TABLE policies (
			id            INTEGER PRIMARY KEY AUTOINCREMENT,
			priority      INTEGER NOT NULL,
			effect        TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
			roles         TEXT NOT NULL DEFAULT '[]',
			account_types TEXT NOT NULL DEFAULT '[]',
			actions       TEXT NOT NULL DEFAULT '[]',
			service_names TEXT NOT NULL DEFAULT '[]',
			required_tags TEXT NOT NULL DEFAULT '[]',
			description   TEXT NOT NULL DEFAULT ''
		)`,
	`CREATE TABLE recovery_codes (
			account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
			code_hash  TEXT NOT NULL,
			used_at    TEXT,
			PRIMARY KEY (account_id, code_hash)
		)`,
)}
