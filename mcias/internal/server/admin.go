package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// The operator's offline commands (mcias init, status, recover-admin,
// system-account): they work on the database file directly, never through
// an API, and are safe beside a running server (SQLite).

// OpenDB opens MCIAS's database with its migrations applied (for the
// snapshot verb).
func OpenDB(ctx context.Context, cfg *Config) (*db.DB, error) {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return nil, err
	}
	return st.DB(), nil
}

// openService opens the store and the identity service on it; close the
// store when done.
func openService(ctx context.Context, cfg *Config) (*store.Store, *identity.Service, error) {
	icfg, err := cfg.Identity()
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return nil, nil, err
	}
	svc, err := identity.New(ctx, st, icfg, logging.Discard())
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return st, svc, nil
}

// requireDB fails when the database file does not exist yet.
func requireDB(cfg *Config) error {
	if _, err := os.Stat(cfg.Database.Path); err != nil {
		return fmt.Errorf("database %s: %w (run mcias init)", cfg.Database.Path, err)
	}
	return nil
}

// AdminPasswordEnv is where init reads the first admin's password when no
// file is given.
const AdminPasswordEnv = "MCIAS_ADMIN_PASSWORD" //nolint:gosec // G101: the name of a variable, not a credential

// readPassword reads a password from file (its first line), or returns ""
// when file is "".
func readPassword(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file) //nolint:gosec // operator-named file
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// generatePassword makes a 24-character password from an unambiguous set.
func generatePassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	for i := range b {
		b[i] = alphabet[randIndex(len(alphabet))]
	}
	return string(b)
}

func randIndex(n int) int {
	// Rejection sampling keeps the choice uniform.
	limit := 256 - 256%n
	var one [1]byte
	for {
		_, _ = rand.Read(one[:])
		if int(one[0]) < limit {
			return int(one[0]) % n
		}
	}
}

// Init prepares the database: the first signing key, the admin account
// username and the default login policy. The password comes from
// passwordFile, else $MCIAS_ADMIN_PASSWORD; without either one is
// generated and printed once. A database that has accounts is left alone.
func Init(ctx context.Context, cfg *Config, username, passwordFile string, out io.Writer) error {
	pw := os.Getenv(AdminPasswordEnv)
	if passwordFile != "" {
		var err error
		if pw, err = readPassword(passwordFile); err != nil {
			return err
		}
	}
	generated := pw == ""
	if generated {
		pw = generatePassword()
	}
	st, svc, err := openService(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	created, err := svc.Bootstrap(ctx, username, pw)
	if err != nil {
		return err
	}
	if !created {
		fmt.Fprintf(out, "mcias: %s already has accounts; nothing changed\n", cfg.Database.Path)
		return nil
	}
	fmt.Fprintf(out, "created admin account %q\n", username)
	if generated {
		fmt.Fprintf(out, "admin password (shown once): %s\n", pw)
	}
	return nil
}

// Summary is what the status verb reports.
type Summary struct {
	Database  string `json:"database"`
	Accounts  int    `json:"accounts"`
	Admins    int    `json:"admins"`
	Disabled  int    `json:"disabled"`
	System    int    `json:"system"`
	Keys      int    `json:"keys"`
	ActiveKey string `json:"active_key"`
	Policies  int    `json:"policies"`
}

// Status prints the database's accounts, signing keys and policies, as a
// table or as JSON.
func Status(ctx context.Context, cfg *Config, out io.Writer, asJSON bool) error {
	if err := requireDB(cfg); err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	sum, err := summarize(ctx, st)
	if err != nil {
		return err
	}
	sum.Database = cfg.Database.Path
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	fmt.Fprintf(out, "database:   %s\naccounts:   %d (%d admins, %d disabled, %d system)\nkeys:       %d (active %s)\npolicies:   %d\n",
		sum.Database, sum.Accounts, sum.Admins, sum.Disabled, sum.System, sum.Keys, sum.ActiveKey, sum.Policies)
	return nil
}

func summarize(ctx context.Context, st *store.Store) (Summary, error) {
	var s Summary
	accts, err := st.ListAccounts(ctx)
	if err != nil {
		return s, err
	}
	for _, a := range accts {
		s.Accounts++
		if a.Status == store.StatusDisabled {
			s.Disabled++
		}
		if a.Type == "system" {
			s.System++
		}
		for _, r := range a.Roles {
			if r == "admin" {
				s.Admins++
			}
		}
	}
	keys, err := st.Keys(ctx)
	if err != nil {
		return s, err
	}
	s.Keys = len(keys)
	for _, k := range keys {
		if k.Active {
			s.ActiveKey = k.ID
		}
	}
	pols, err := st.ListPolicies(ctx)
	if err != nil {
		return s, err
	}
	s.Policies = len(pols)
	return s, nil
}

// RecoverAdmin is the break glass (identity.Service.RecoverAdmin): it makes
// username an active admin with the password from passwordFile, or a
// generated one printed once.
func RecoverAdmin(ctx context.Context, cfg *Config, username, passwordFile string, out io.Writer) error {
	if err := requireDB(cfg); err != nil {
		return err
	}
	pw, err := readPassword(passwordFile)
	if err != nil {
		return err
	}
	generated := pw == ""
	if generated {
		pw = generatePassword()
	}
	st, svc, err := openService(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	added, err := svc.RecoverAdmin(ctx, username, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s is an active admin\n", username)
	if added {
		fmt.Fprintln(out, "login policy denied admins using mciasctl: added a priority -1 allow rule; delete it once the policy is repaired")
	}
	if generated {
		fmt.Fprintf(out, "password (shown once): %s\n", pw)
	}
	return nil
}

// SystemAccount makes sure the system account name exists and writes a
// fresh token for it (lifetime ttl, 0 for the configured system_ttl) to
// tokenFile, mode 0600, atomically. The token is never printed.
func SystemAccount(ctx context.Context, cfg *Config, name, tokenFile string, ttl time.Duration, out io.Writer) error {
	if tokenFile == "" {
		return fmt.Errorf("a token file is required")
	}
	if err := requireDB(cfg); err != nil {
		return err
	}
	st, svc, err := openService(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	created, iss, err := svc.EnsureSystemAccount(ctx, name, ttl)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if err := atomicfile.Write(tokenFile, []byte(iss.Token+"\n"), 0o600); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if created {
		fmt.Fprintf(out, "created system account %q\n", name)
	} else {
		fmt.Fprintf(out, "system account %q exists\n", name)
	}
	fmt.Fprintf(out, "token written to %s (expires %s)\n", tokenFile, iss.ExpiresAt.Format(time.RFC3339))
	return nil
}
