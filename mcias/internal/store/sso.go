package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// migrationSSO adds the single-use SSO authorization codes. Only a code's
// SHA-256 is stored; jti links a redeemed code to the token it produced, so
// a replay can revoke that token.
var migrationSSO = db.Migration{Version: 3, Name: "sso authorization codes", Up: exec(
	`CREATE TABLE sso_codes (
		code_hash    TEXT PRIMARY KEY,
		client_id    TEXT NOT NULL,
		redirect_uri TEXT NOT NULL,
		account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
		created_at   TEXT NOT NULL,
		expires_at   TEXT NOT NULL,
		used_at      TEXT,
		jti          TEXT
	)`,
	`CREATE INDEX sso_codes_expires ON sso_codes(expires_at)`,
)}

// codeTimeFormat is fixed-width (RFC3339Nano drops trailing zeros), so the
// expiry comparisons done in SQL on these strings order like the times.
const codeTimeFormat = "2006-01-02T15:04:05.000000000Z"

func codeTS(t time.Time) string { return t.UTC().Format(codeTimeFormat) }

// SSOCode is a stored SSO authorization code, identified by its hash.
type SSOCode struct {
	Hash        string
	ClientID    string
	RedirectURI string
	AccountID   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// CreateSSOCode stores a new, unused code.
func (s *Store) CreateSSOCode(ctx context.Context, c SSOCode) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sso_codes (code_hash, client_id, redirect_uri, account_id, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, c.Hash, c.ClientID, c.RedirectURI, c.AccountID, codeTS(c.CreatedAt), codeTS(c.ExpiresAt))
	if db.IsUnique(err) {
		return fmt.Errorf("create sso code: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create sso code: %w", err)
	}
	return nil
}

// SSORedemption names the code being exchanged and what the exchange
// presented with it.
type SSORedemption struct {
	Hash        string
	ClientID    string
	RedirectURI string
	Now         time.Time
}

// RedeemSSOCode consumes the code and records the token issued for it, in
// one transaction. The code is consumed by a single conditional UPDATE
// (unused, unexpired, same client and redirect URI), so of two parallel
// redemptions exactly one wins; the transaction makes the loser see the
// winner's token, which is what lets a replay revoke it. mint builds the
// token for the code's account; its error aborts the redemption and leaves
// the code unused. A code that cannot be redeemed is ErrNotFound.
func (s *Store) RedeemSSOCode(ctx context.Context, r SSORedemption, mint func(accountID string) (TokenRecord, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("redeem sso code: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var accountID string
	err = tx.QueryRowContext(ctx, `UPDATE sso_codes SET used_at = ?
		WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? AND client_id = ? AND redirect_uri = ?
		RETURNING account_id`, codeTS(r.Now), r.Hash, codeTS(r.Now), r.ClientID, r.RedirectURI).Scan(&accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("redeem sso code: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("redeem sso code: %w", err)
	}
	rec, err := mint(accountID)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tokens (jti, account_id, kind, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		rec.JTI, rec.AccountID, rec.Kind, db.FormatTime(rec.IssuedAt), db.FormatTime(rec.ExpiresAt)); err != nil {
		return fmt.Errorf("redeem sso code: record token: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sso_codes SET jti = ? WHERE code_hash = ?`, rec.JTI, r.Hash); err != nil {
		return fmt.Errorf("redeem sso code: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("redeem sso code: %w", err)
	}
	return nil
}

// RevokeSSOCodeToken revokes the token issued from an already redeemed
// code (a replay means the code leaked). It reports whether a token was
// revoked by this call.
func (s *Store) RevokeSSOCodeToken(ctx context.Context, hash string, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE revoked_at IS NULL
		AND jti = (SELECT jti FROM sso_codes WHERE code_hash = ? AND used_at IS NOT NULL)`, db.FormatTime(now), hash)
	if err != nil {
		return false, fmt.Errorf("revoke sso code token: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// PruneSSOCodes deletes codes, used or not, that expired before now.
func (s *Store) PruneSSOCodes(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sso_codes WHERE expires_at <= ?`, codeTS(now))
	if err != nil {
		return 0, fmt.Errorf("prune sso codes: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
