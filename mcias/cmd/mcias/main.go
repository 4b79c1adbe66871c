// Command mcias is the Metacircular identity service: server, init,
// status and snapshot.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/server"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcias: %v\n", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:           "mcias",
		Short:         "Metacircular identity and access service",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/srv/mcias/mcias.toml", "configuration file")
	load := func() (*server.Config, error) { return server.LoadConfig(cfgPath) }
	cmd.AddCommand(serverCmd(load), initCmd(load), statusCmd(load), snapshotCmd(load), recoverCmd(load), systemAccountCmd(load))
	return cmd
}

func serverCmd(load func() (*server.Config, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Serve the REST and gRPC APIs until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			logger, err := logging.New(cfg.Log, os.Stderr)
			if err != nil {
				return err
			}
			logger.Info("mcias starting", "version", version)
			return server.Run(cmd.Context(), cfg, logger, server.Listeners{})
		},
	}
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

func initCmd(load func() (*server.Config, error)) *cobra.Command {
	var username, passwordFile string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the database, the first signing key, the first admin and the default login policy",
		Long: `init prepares an empty MCIAS database: it creates the first Ed25519 signing key,
the admin account and a default policy rule allowing logins. The admin password
is read from --password-file (or $MCIAS_ADMIN_PASSWORD); when neither is given a
password is generated and printed once. Running init again on a database that
already has accounts changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			icfg, err := cfg.Identity()
			if err != nil {
				return err
			}
			pw := os.Getenv("MCIAS_ADMIN_PASSWORD")
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile) //nolint:gosec // operator-named file
				if err != nil {
					return err
				}
				pw = strings.TrimRight(string(b), "\r\n")
			}
			generated := pw == ""
			if generated {
				pw = generatePassword()
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			svc, err := identity.New(ctx, st, icfg, logging.Discard())
			if err != nil {
				return err
			}
			created, err := svc.Bootstrap(ctx, username, pw)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !created {
				fmt.Fprintf(out, "mcias: %s already has accounts; nothing changed\n", cfg.Database.Path)
				return nil
			}
			fmt.Fprintf(out, "created admin account %q\n", username)
			if generated {
				fmt.Fprintf(out, "admin password (shown once): %s\n", pw)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&username, "admin-username", "admin", "username of the first admin")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the admin password")
	return cmd
}

func statusCmd(load func() (*server.Config, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Summarize the database: accounts, signing keys, policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			if _, err := os.Stat(cfg.Database.Path); err != nil {
				return fmt.Errorf("database %s: %w (run mcias init)", cfg.Database.Path, err)
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			sum, err := summarize(ctx, st)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			fmt.Fprintf(out, "database:   %s\naccounts:   %d (%d admins, %d disabled, %d system)\nkeys:       %d (active %s)\npolicies:   %d\n",
				cfg.Database.Path, sum.Accounts, sum.Admins, sum.Disabled, sum.System, sum.Keys, sum.ActiveKey, sum.Policies)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type summary struct {
	Accounts  int    `json:"accounts"`
	Admins    int    `json:"admins"`
	Disabled  int    `json:"disabled"`
	System    int    `json:"system"`
	Keys      int    `json:"keys"`
	ActiveKey string `json:"active_key"`
	Policies  int    `json:"policies"`
}

func summarize(ctx context.Context, st *store.Store) (summary, error) {
	var s summary
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

func snapshotCmd(load func() (*server.Config, error)) *cobra.Command {
	return snapshot.Command(func(ctx context.Context) (*db.DB, string, string, error) {
		cfg, err := load()
		if err != nil {
			return nil, "", "", err
		}
		if _, err := os.Stat(cfg.Database.Path); errors.Is(err, os.ErrNotExist) {
			return nil, "", "", fmt.Errorf("database %s does not exist", cfg.Database.Path)
		}
		st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
		if err != nil {
			return nil, "", "", err
		}
		return st.DB(), "", server.ServiceName, nil
	})
}

func recoverCmd(load func() (*server.Config, error)) *cobra.Command {
	var passwordFile string
	cmd := &cobra.Command{
		Use:   "recover-admin USERNAME",
		Short: "Break glass: make USERNAME an active admin with a new password (needs the database file)",
		Long: `recover-admin works directly on the database, for when no admin can log in
(lost password and recovery codes, or a policy that denies everyone). It makes
USERNAME an active human admin, creating it if needed, sets the password from
--password-file (or generates one and prints it once) and clears its TOTP.
Stop the server first or run it beside the server: both are safe with SQLite.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			icfg, err := cfg.Identity()
			if err != nil {
				return err
			}
			if _, err := os.Stat(cfg.Database.Path); err != nil {
				return fmt.Errorf("database %s: %w", cfg.Database.Path, err)
			}
			pw := ""
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile) //nolint:gosec // operator-named file
				if err != nil {
					return err
				}
				pw = strings.TrimRight(string(b), "\r\n")
			}
			generated := pw == ""
			if generated {
				pw = generatePassword()
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			svc, err := identity.New(ctx, st, icfg, logging.Discard())
			if err != nil {
				return err
			}
			added, err := svc.RecoverAdmin(ctx, args[0], pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is an active admin\n", args[0])
			if added {
				fmt.Fprintln(cmd.OutOrStdout(), "login policy denied admins using mciasctl: added a priority -1 allow rule; delete it once the policy is repaired")
			}
			if generated {
				fmt.Fprintf(cmd.OutOrStdout(), "password (shown once): %s\n", pw)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the new password")
	return cmd
}

func systemAccountCmd(load func() (*server.Config, error)) *cobra.Command {
	var tokenFile string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "system-account NAME",
		Short: "Offline: make sure system account NAME exists and write a fresh token for it (needs the database file)",
		Long: `system-account works directly on the database, for provisioning without an
admin login (the local launcher uses it for mcp-agent). It creates the
system account NAME if it does not exist, issues it a new system token
(--ttl, default the configured system_ttl) and writes the token to
--token-file with mode 0600, replacing the file atomically. The token is
never printed. Older tokens of the account stay valid; revoke them with
mciasctl. Safe to run beside a running server.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tokenFile == "" {
				return errors.New("--token-file is required")
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			icfg, err := cfg.Identity()
			if err != nil {
				return err
			}
			if _, err := os.Stat(cfg.Database.Path); err != nil {
				return fmt.Errorf("database %s: %w (run mcias init)", cfg.Database.Path, err)
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			svc, err := identity.New(ctx, st, icfg, logging.Discard())
			if err != nil {
				return err
			}
			created, iss, err := svc.EnsureSystemAccount(ctx, args[0], ttl)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
				return fmt.Errorf("token file: %w", err)
			}
			if err := atomicfile.Write(tokenFile, []byte(iss.Token+"\n"), 0o600); err != nil {
				return fmt.Errorf("token file: %w", err)
			}
			out := cmd.OutOrStdout()
			if created {
				fmt.Fprintf(out, "created system account %q\n", args[0])
			} else {
				fmt.Fprintf(out, "system account %q exists\n", args[0])
			}
			fmt.Fprintf(out, "token written to %s (expires %s)\n", tokenFile, iss.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file to write the token to (mode 0600; required)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime (default: the configured system_ttl, 365 days)")
	return cmd
}
