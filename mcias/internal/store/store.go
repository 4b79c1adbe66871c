package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcias/internal/policy"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrCredentialsChanged: RecordToken found the account's credentials
	// changed (or the account gone) since the caller read it.
	ErrCredentialsChanged = errors.New("account credentials changed")
)

// Account statuses.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// Token kinds.
const (
	KindLogin  = "login"
	KindRenew  = "renew"
	KindSystem = "system"
	KindSSO    = "sso"
)

// Account is a stored account.
type Account struct {
	ID           string
	Username     string
	Type         string
	PasswordHash string
	Status       string
	Roles        []string
	TOTPSecret   string
	TOTPEnabled  bool
	TOTPLastStep int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// CredentialsChangedAt is when the password was last set or TOTP last
	// turned on or off (nil: never since creation). UpdateAccount revokes
	// every token of the account when a change moves it.
	CredentialsChangedAt *time.Time
}

// SigningKey is a stored Ed25519 key.
type SigningKey struct {
	ID        string
	Private   []byte
	Public    []byte
	CreatedAt time.Time
	Active    bool
}

// TokenRecord is an issued token.
type TokenRecord struct {
	JTI       string
	AccountID string
	Kind      string
	IssuedAt  time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// Store is the MCIAS database.
type Store struct {
	db *db.DB
	dv *dataVersion
}

// Open opens (creating and migrating) the database at path.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	d, err := db.Open(ctx, path, db.Options{Logger: logger, Migrations: migrations})
	if err != nil {
		return nil, err
	}
	return &Store{db: d, dv: newDataVersion()}, nil
}

// DB exposes the database for snapshots.
func (s *Store) DB() *db.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error {
	s.dv.stopVersions()
	return s.db.Close()
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

const accountCols = `id, username, account_type, password_hash, status, totp_secret, totp_enabled, totp_last_step, created_at, updated_at, credentials_changed_at`

func scanAccount(row interface{ Scan(...any) error }) (*Account, error) {
	var a Account
	if err := row.Scan(&a.ID, &a.Username, &a.Type, &a.PasswordHash, &a.Status, &a.TOTPSecret,
		&a.TOTPEnabled, &a.TOTPLastStep, db.Time(&a.CreatedAt), db.Time(&a.UpdatedAt), db.NullTime(&a.CredentialsChangedAt)); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return &a, nil
}

func loadRoles(ctx context.Context, q querier, a *Account) error {
	rows, err := q.QueryContext(ctx, `SELECT role FROM account_roles WHERE account_id = ? ORDER BY role`, a.ID)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	a.Roles = []string{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return err
		}
		a.Roles = append(a.Roles, r)
	}
	return rows.Err()
}

// CreateAccount inserts an account with its roles.
func (s *Store) CreateAccount(ctx context.Context, a *Account) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `INSERT INTO accounts (`+accountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Username, a.Type, a.PasswordHash, a.Status, a.TOTPSecret, a.TOTPEnabled, a.TOTPLastStep,
		db.FormatTime(a.CreatedAt), db.FormatTime(a.UpdatedAt), db.NullTime(&a.CredentialsChangedAt))
	if db.IsUnique(err) {
		return fmt.Errorf("create account %q: %w", a.Username, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	if err := setRoles(ctx, tx, a.ID, a.Roles); err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	return tx.Commit()
}

func setRoles(ctx context.Context, tx *sql.Tx, id string, roles []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM account_roles WHERE account_id = ?`, id); err != nil {
		return err
	}
	for _, r := range roles {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO account_roles (account_id, role) VALUES (?, ?)`, id, r); err != nil {
			return err
		}
	}
	return nil
}

// GetAccount loads an account by ID.
func (s *Store) GetAccount(ctx context.Context, id string) (*Account, error) {
	a, err := scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	if err := loadRoles(ctx, s.db, a); err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	return a, nil
}

// GetAccountByUsername loads an account by (case-insensitive) username.
func (s *Store) GetAccountByUsername(ctx context.Context, username string) (*Account, error) {
	a, err := scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE username = ?`, username))
	if err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	if err := loadRoles(ctx, s.db, a); err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	return a, nil
}

// ListAccounts returns every account ordered by username.
func (s *Store) ListAccounts(ctx context.Context) ([]*Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	var out []*Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	_ = rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	for _, a := range out {
		if err := loadRoles(ctx, s.db, a); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
	}
	return out, nil
}

// UpdateAccount applies fn to the stored account and writes the result, in
// one transaction. Roles are written too. Disabling the account revokes
// all its tokens; so does a credential change (fn moving
// CredentialsChangedAt), which also deletes the account's unused SSO
// codes — nothing minted from the old credentials survives it.
func (s *Store) UpdateAccount(ctx context.Context, id string, fn func(*Account) error) (*Account, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("update account: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	a, err := scanAccount(tx.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("update account: %w", err)
	}
	if err := loadRoles(ctx, tx, a); err != nil {
		return nil, fmt.Errorf("update account: %w", err)
	}
	before := a.CredentialsChangedAt
	if err := fn(a); err != nil {
		return nil, err
	}
	credentialsChanged := !sameTime(before, a.CredentialsChangedAt)
	a.UpdatedAt = time.Now().UTC()
	_, err = tx.ExecContext(ctx, `UPDATE accounts SET username = ?, password_hash = ?, status = ?, totp_secret = ?,
		totp_enabled = ?, totp_last_step = ?, updated_at = ?, credentials_changed_at = ? WHERE id = ?`,
		a.Username, a.PasswordHash, a.Status, a.TOTPSecret, a.TOTPEnabled, a.TOTPLastStep, db.FormatTime(a.UpdatedAt),
		db.NullTime(&a.CredentialsChangedAt), a.ID)
	if db.IsUnique(err) {
		return nil, fmt.Errorf("update account: username %q: %w", a.Username, ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("update account: %w", err)
	}
	if err := setRoles(ctx, tx, a.ID, a.Roles); err != nil {
		return nil, fmt.Errorf("update account: %w", err)
	}
	if a.Status == StatusDisabled || credentialsChanged {
		if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL`, db.FormatTime(a.UpdatedAt), a.ID); err != nil {
			return nil, fmt.Errorf("update account: %w", err)
		}
	}
	if credentialsChanged {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sso_codes WHERE account_id = ? AND used_at IS NULL`, a.ID); err != nil {
			return nil, fmt.Errorf("update account: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("update account: %w", err)
	}
	return a, nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// DeleteAccount removes an account and, by cascade, its roles, tokens and
// recovery codes.
func (s *Store) DeleteAccount(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete account: %w", ErrNotFound)
	}
	return nil
}

// CountAdmins counts active accounts holding the admin role.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts a JOIN account_roles r ON r.account_id = a.id
		WHERE r.role = 'admin' AND a.status = 'active'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count admins: %w", err)
	}
	return n, nil
}

// AdvanceTOTPStep records step as the last TOTP step used, only if it is
// newer than the stored one. It reports whether this call won.
func (s *Store) AdvanceTOTPStep(ctx context.Context, id string, step int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE accounts SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`, step, id, step)
	if err != nil {
		return false, fmt.Errorf("record totp step: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ReplaceRecoveryCodes swaps an account's recovery codes for new hashes.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, id string, hashes []string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store recovery codes: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE account_id = ?`, id); err != nil {
		return fmt.Errorf("store recovery codes: %w", err)
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (account_id, code_hash) VALUES (?, ?)`, id, h); err != nil {
			return fmt.Errorf("store recovery codes: %w", err)
		}
	}
	return tx.Commit()
}

// UseRecoveryCode marks an unused code as used; false if it does not exist
// or was already used.
func (s *Store) UseRecoveryCode(ctx context.Context, id, hash string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ? WHERE account_id = ? AND code_hash = ? AND used_at IS NULL`,
		db.FormatTime(time.Now()), id, hash)
	if err != nil {
		return false, fmt.Errorf("use recovery code: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RemainingRecoveryCodes counts unused recovery codes.
func (s *Store) RemainingRecoveryCodes(ctx context.Context, id string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE account_id = ? AND used_at IS NULL`, id).Scan(&n)
	return n, err
}

// --- signing keys ---

// AddKey stores a key; if active, it becomes the only active key.
func (s *Store) AddKey(ctx context.Context, k SigningKey) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add key: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if k.Active {
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET active = 0 WHERE active = 1`); err != nil {
			return fmt.Errorf("add key: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, private_key, public_key, created_at, active) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.Private, k.Public, db.FormatTime(k.CreatedAt), k.Active); err != nil {
		return fmt.Errorf("add key: %w", err)
	}
	return tx.Commit()
}

// Keys lists every signing key, newest first.
func (s *Store) Keys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kid, private_key, public_key, created_at, active FROM signing_keys ORDER BY created_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		if err := rows.Scan(&k.ID, &k.Private, &k.Public, db.Time(&k.CreatedAt), &k.Active); err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteKeysBefore removes inactive keys created before cutoff (no token
// signed by them can still be valid).
func (s *Store) DeleteKeysBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM signing_keys WHERE active = 0 AND created_at < ?`, db.FormatTime(cutoff))
	if err != nil {
		return 0, fmt.Errorf("delete old keys: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// --- tokens ---

// RecordToken stores an issued token, provided the account's credentials
// are still as the caller saw them when it checked them: its
// credentials_changed_at must equal credentialsAsOf (nil: never changed).
// Otherwise nothing is stored and the error is ErrCredentialsChanged, so a
// login or renewal that raced a password change cannot mint a token from
// the old credentials after the change revoked the others.
func (s *Store) RecordToken(ctx context.Context, t TokenRecord, credentialsAsOf *time.Time) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO tokens (jti, account_id, kind, issued_at, expires_at)
		SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ? AND credentials_changed_at IS ?)`,
		t.JTI, t.AccountID, t.Kind, db.FormatTime(t.IssuedAt), db.FormatTime(t.ExpiresAt), t.AccountID, db.NullTime(&credentialsAsOf))
	if err != nil {
		return fmt.Errorf("record token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("record token: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("record token: %w", ErrCredentialsChanged)
	}
	return nil
}

// GetToken loads an issued token by jti.
func (s *Store) GetToken(ctx context.Context, jti string) (*TokenRecord, error) {
	var t TokenRecord
	err := s.db.QueryRowContext(ctx, `SELECT jti, account_id, kind, issued_at, expires_at, revoked_at FROM tokens WHERE jti = ?`, jti).
		Scan(&t.JTI, &t.AccountID, &t.Kind, db.Time(&t.IssuedAt), db.Time(&t.ExpiresAt), db.NullTime(&t.RevokedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get token: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get token: %w", err)
	}
	return &t, nil
}

// TokenState is what validating a token needs from the database: its
// record and its account's current state, read by one statement (so from
// one snapshot).
type TokenState struct {
	Kind    string
	Revoked bool
	// Account has the fields validation and renewal read: ID, Username,
	// Type, Status, Roles (sorted) and CredentialsChangedAt. No secret is
	// read: PasswordHash and TOTPSecret are empty.
	Account Account
}

// stateQuery reads a token's record joined with its account and the
// account's roles. It runs on every token validation, so it is one
// prepared statement (mcdsl/db Prepared) rather than three parsed ones.
// Roles cannot hold commas (the account_roles CHECK), so a comma-joined
// list is unambiguous.
const stateQuery = `SELECT t.kind, t.revoked_at IS NOT NULL, a.id, a.username, a.account_type, a.status,
	a.credentials_changed_at, (SELECT group_concat(r.role, ',') FROM account_roles r WHERE r.account_id = a.id)
	FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE t.jti = ?`

// TokenState loads the token jti with its account's current state;
// ErrNotFound when no such token is recorded (never issued, pruned, or its
// account deleted).
func (s *Store) TokenState(ctx context.Context, jti string) (*TokenState, error) {
	stmt, err := s.db.Prepared(ctx, stateQuery)
	if err != nil {
		return nil, fmt.Errorf("token state: %w", err)
	}
	var ts TokenState
	var roles sql.NullString
	a := &ts.Account
	err = stmt.QueryRowContext(ctx, jti).Scan(&ts.Kind, &ts.Revoked, &a.ID, &a.Username, &a.Type, &a.Status,
		db.NullTime(&a.CredentialsChangedAt), &roles)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token state: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("token state: %w", err)
	}
	a.Roles = []string{}
	if roles.Valid && roles.String != "" {
		a.Roles = strings.Split(roles.String, ",")
		slices.Sort(a.Roles)
	}
	return &ts, nil
}

// RevokeToken marks a token revoked; false if it was unknown or already
// revoked.
func (s *Store) RevokeToken(ctx context.Context, jti string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL`, db.FormatTime(time.Now()), jti)
	if err != nil {
		return false, fmt.Errorf("revoke token: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ListTokens lists an account's unexpired tokens, newest first.
func (s *Store) ListTokens(ctx context.Context, accountID string, now time.Time) ([]TokenRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT jti, account_id, kind, issued_at, expires_at, revoked_at FROM tokens
		WHERE account_id = ? AND expires_at > ? ORDER BY issued_at DESC`, accountID, db.FormatTime(now))
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []TokenRecord
	for rows.Next() {
		var t TokenRecord
		if err := rows.Scan(&t.JTI, &t.AccountID, &t.Kind, db.Time(&t.IssuedAt), db.Time(&t.ExpiresAt), db.NullTime(&t.RevokedAt)); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// PruneTokens deletes token records (revoked or not) that expired before
// now: an expired token is rejected on its expiry alone.
func (s *Store) PruneTokens(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE expires_at <= ?`, db.FormatTime(now))
	if err != nil {
		return 0, fmt.Errorf("prune tokens: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// --- policies ---

func encodeList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func decodeList(s string) []string {
	var l []string
	_ = json.Unmarshal([]byte(s), &l)
	if l == nil {
		l = []string{}
	}
	return l
}

const policyCols = `id, priority, effect, roles, account_types, actions, service_names, required_tags, description`

func scanPolicy(row interface{ Scan(...any) error }) (policy.Rule, error) {
	var r policy.Rule
	var roles, types, actions, services, tags string
	err := row.Scan(&r.ID, &r.Priority, &r.Effect, &roles, &types, &actions, &services, &tags, &r.Description)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	r.Roles, r.AccountTypes, r.Actions = decodeList(roles), decodeList(types), decodeList(actions)
	r.ServiceNames, r.RequiredTags = decodeList(services), decodeList(tags)
	return r, err
}

// CreatePolicy inserts a rule and returns it with its ID.
func (s *Store) CreatePolicy(ctx context.Context, r policy.Rule) (policy.Rule, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO policies (priority, effect, roles, account_types, actions, service_names, required_tags, description)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.Priority, r.Effect, encodeList(r.Roles), encodeList(r.AccountTypes),
		encodeList(r.Actions), encodeList(r.ServiceNames), encodeList(r.RequiredTags), r.Description)
	if err != nil {
		return r, fmt.Errorf("create policy: %w", err)
	}
	r.ID, _ = res.LastInsertId()
	return s.GetPolicy(ctx, r.ID)
}

// GetPolicy loads a rule.
func (s *Store) GetPolicy(ctx context.Context, id int64) (policy.Rule, error) {
	r, err := scanPolicy(s.db.QueryRowContext(ctx, `SELECT `+policyCols+` FROM policies WHERE id = ?`, id))
	if err != nil {
		return r, fmt.Errorf("get policy %d: %w", id, err)
	}
	return r, nil
}

// UpdatePolicy replaces a rule's fields.
func (s *Store) UpdatePolicy(ctx context.Context, r policy.Rule) (policy.Rule, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE policies SET priority = ?, effect = ?, roles = ?, account_types = ?, actions = ?,
		service_names = ?, required_tags = ?, description = ? WHERE id = ?`, r.Priority, r.Effect, encodeList(r.Roles),
		encodeList(r.AccountTypes), encodeList(r.Actions), encodeList(r.ServiceNames), encodeList(r.RequiredTags), r.Description, r.ID)
	if err != nil {
		return r, fmt.Errorf("update policy: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return r, fmt.Errorf("update policy %d: %w", r.ID, ErrNotFound)
	}
	return s.GetPolicy(ctx, r.ID)
}

// DeletePolicy removes a rule.
func (s *Store) DeletePolicy(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM policies WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete policy: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete policy %d: %w", id, ErrNotFound)
	}
	return nil
}

// ListPolicies returns rules in evaluation order.
func (s *Store) ListPolicies(ctx context.Context) ([]policy.Rule, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+policyCols+` FROM policies ORDER BY priority, id`)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []policy.Rule{}
	for rows.Next() {
		r, err := scanPolicy(rows)
		if err != nil {
			return nil, fmt.Errorf("list policies: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
