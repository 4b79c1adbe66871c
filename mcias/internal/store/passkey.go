package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// migrationPasskeys adds WebAuthn passkeys and the settings table the web UI
// keeps its CSRF key in.
var migrationPasskeys = db.Migration{Version: 2, Name: "passkeys and settings", Up: exec(
	`CREATE TABLE settings (
		name  TEXT PRIMARY KEY,
		value BLOB NOT NULL
	)`,
	// One random WebAuthn user handle per account, made at its first
	// passkey registration. It is what authenticators store and hand back
	// in a usernameless login, so it must never be the username.
	`CREATE TABLE webauthn_users (
		account_id  TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
		user_handle BLOB NOT NULL UNIQUE CHECK (length(user_handle) BETWEEN 1 AND 64)
	)`,
	`CREATE TABLE passkeys (
		credential_id      BLOB PRIMARY KEY,
		account_id         TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
		name               TEXT NOT NULL,
		public_key         BLOB NOT NULL,
		attestation_type   TEXT NOT NULL DEFAULT '',
		attestation_format TEXT NOT NULL DEFAULT '',
		aaguid             BLOB NOT NULL,
		sign_count         INTEGER NOT NULL DEFAULT 0,
		user_present       INTEGER NOT NULL DEFAULT 0,
		user_verified      INTEGER NOT NULL DEFAULT 0,
		backup_eligible    INTEGER NOT NULL DEFAULT 0,
		backup_state       INTEGER NOT NULL DEFAULT 0,
		transports         TEXT NOT NULL DEFAULT '[]',
		attachment         TEXT NOT NULL DEFAULT '',
		created_at         TEXT NOT NULL,
		last_used_at       TEXT
	)`,
	`CREATE INDEX passkeys_account ON passkeys(account_id)`,
)}

// Passkey is a stored WebAuthn credential (the credential record of the
// WebAuthn specification, §4).
type Passkey struct {
	CredentialID      []byte
	AccountID         string
	Name              string
	PublicKey         []byte // COSE_Key, as the authenticator sent it
	AttestationType   string
	AttestationFormat string
	AAGUID            []byte
	SignCount         uint32
	// The authenticator data flags of the last successful ceremony, except
	// UserVerified, which only ever goes from false to true.
	UserPresent, UserVerified, BackupEligible, BackupState bool
	Transports                                             []string
	Attachment                                             string
	CreatedAt                                              time.Time
	LastUsedAt                                             *time.Time
}

//nolint:gosec // G101: column names, not a credential
const passkeyCols = `credential_id, account_id, name, public_key, attestation_type, attestation_format, aaguid,
	sign_count, user_present, user_verified, backup_eligible, backup_state, transports, attachment, created_at, last_used_at`

func scanPasskey(row interface{ Scan(...any) error }) (*Passkey, error) {
	var p Passkey
	var transports string
	if err := row.Scan(&p.CredentialID, &p.AccountID, &p.Name, &p.PublicKey, &p.AttestationType, &p.AttestationFormat,
		&p.AAGUID, &p.SignCount, &p.UserPresent, &p.UserVerified, &p.BackupEligible, &p.BackupState, &transports,
		&p.Attachment, db.Time(&p.CreatedAt), db.NullTime(&p.LastUsedAt)); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	p.Transports = decodeList(transports)
	return &p, nil
}

// InitSetting stores value under name unless a value is already stored,
// and returns the stored value: concurrent first calls agree on one value.
func (s *Store) InitSetting(ctx context.Context, name string, value []byte) ([]byte, error) {
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)`, name, value); err != nil {
		return nil, fmt.Errorf("init setting %s: %w", name, err)
	}
	var out []byte
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&out); err != nil {
		return nil, fmt.Errorf("read setting %s: %w", name, err)
	}
	return out, nil
}

// UserHandle returns the account's WebAuthn user handle, or ErrNotFound if
// it has never registered a passkey.
func (s *Store) UserHandle(ctx context.Context, accountID string) ([]byte, error) {
	var h []byte
	err := s.db.QueryRowContext(ctx, `SELECT user_handle FROM webauthn_users WHERE account_id = ?`, accountID).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get user handle: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get user handle: %w", err)
	}
	return h, nil
}

// InitUserHandle stores handle as the account's user handle unless it has
// one, and returns the stored handle.
func (s *Store) InitUserHandle(ctx context.Context, accountID string, handle []byte) ([]byte, error) {
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO webauthn_users (account_id, user_handle) VALUES (?, ?)`,
		accountID, handle); err != nil {
		return nil, fmt.Errorf("store user handle: %w", err)
	}
	return s.UserHandle(ctx, accountID)
}

// AccountByUserHandle loads the account a WebAuthn user handle belongs to.
func (s *Store) AccountByUserHandle(ctx context.Context, handle []byte) (*Account, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT account_id FROM webauthn_users WHERE user_handle = ?`, handle).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("account by user handle: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("account by user handle: %w", err)
	}
	return s.GetAccount(ctx, id)
}

// AddPasskey stores a newly registered credential; a credential ID that is
// already registered is ErrConflict.
func (s *Store) AddPasskey(ctx context.Context, p *Passkey) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO passkeys (`+passkeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
		p.CredentialID, p.AccountID, p.Name, p.PublicKey, p.AttestationType, p.AttestationFormat, p.AAGUID,
		p.SignCount, p.UserPresent, p.UserVerified, p.BackupEligible, p.BackupState, encodeList(p.Transports),
		p.Attachment, db.FormatTime(p.CreatedAt))
	if db.IsUnique(err) {
		return fmt.Errorf("add passkey: credential already registered: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("add passkey: %w", err)
	}
	return nil
}

// ListPasskeys returns an account's passkeys, oldest first.
func (s *Store) ListPasskeys(ctx context.Context, accountID string) ([]*Passkey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+passkeyCols+` FROM passkeys WHERE account_id = ? ORDER BY created_at, credential_id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list passkeys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []*Passkey{}
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, fmt.Errorf("list passkeys: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list passkeys: %w", err)
	}
	return out, nil
}

// GetPasskey loads one credential of an account.
func (s *Store) GetPasskey(ctx context.Context, accountID string, credentialID []byte) (*Passkey, error) {
	p, err := scanPasskey(s.db.QueryRowContext(ctx, `SELECT `+passkeyCols+` FROM passkeys WHERE account_id = ? AND credential_id = ?`,
		accountID, credentialID))
	if err != nil {
		return nil, fmt.Errorf("get passkey: %w", err)
	}
	return p, nil
}

// RenamePasskey changes a credential's display name.
func (s *Store) RenamePasskey(ctx context.Context, accountID string, credentialID []byte, name string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE passkeys SET name = ? WHERE account_id = ? AND credential_id = ?`, name, accountID, credentialID)
	if err != nil {
		return fmt.Errorf("rename passkey: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("rename passkey: %w", ErrNotFound)
	}
	return nil
}

// DeletePasskey removes a credential.
func (s *Store) DeletePasskey(ctx context.Context, accountID string, credentialID []byte) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM passkeys WHERE account_id = ? AND credential_id = ?`, accountID, credentialID)
	if err != nil {
		return fmt.Errorf("delete passkey: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete passkey: %w", ErrNotFound)
	}
	return nil
}

// PasskeyUse is what a successful login changes on a credential.
type PasskeyUse struct {
	CredentialID []byte
	// SignCount is the authenticator's new signature counter.
	SignCount                                              uint32
	UserPresent, UserVerified, BackupEligible, BackupState bool
	UsedAt                                                 time.Time
}

// RecordPasskeyUse stores a login's counter, flags and time, only if the
// counter moved forward (or the authenticator keeps no counter: both zero).
// It reports whether this call won, so two logins racing with the same
// counter value cannot both succeed.
func (s *Store) RecordPasskeyUse(ctx context.Context, u PasskeyUse) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE passkeys SET sign_count = ?, user_present = ?, user_verified = ?,
		backup_eligible = ?, backup_state = ?, last_used_at = ?
		WHERE credential_id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
		u.SignCount, u.UserPresent, u.UserVerified, u.BackupEligible, u.BackupState, db.FormatTime(u.UsedAt),
		u.CredentialID, u.SignCount, u.SignCount)
	if err != nil {
		return false, fmt.Errorf("record passkey use: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
