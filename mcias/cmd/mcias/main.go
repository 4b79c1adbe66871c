// Command mcias is the Metacircular identity service: server, init,
// status, snapshot, and the offline recover-admin and system-account.
package main

import (
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcias/internal/server"
)

var version = "dev"

func main() { service.Main(def()) }

func def() service.Def[*server.Config] {
	return service.Def[*server.Config]{
		Name:    server.ServiceName,
		Short:   "Metacircular identity and access service",
		Version: version,
		Load:    server.LoadConfig,
		Logging: func(c *server.Config) logging.Config { return c.Log },
		ServerLong: `server serves the MCIAS API over gRPC on server.grpc_addr and, on
server.listen_addr (HTTPS), its REST face (generated from the same proto),
the JWKS document, SSO, the WebAuthn ceremonies and the web UI, until
SIGINT or SIGTERM. Expired tokens and SSO codes are pruned hourly.`,
		Build:    server.Build,
		Database: func(c *server.Config) string { return c.Database.Path },
		OpenDB:   server.OpenDB,
		Init:     initCmd,
		Status:   server.Status,
		Commands: []func(func() (*server.Config, error)) *cobra.Command{recoverCmd, systemAccountCmd},
	}
}

func initCmd(load func() (*server.Config, error)) *cobra.Command {
	var username, passwordFile string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the database, the first signing key, the first admin and the default login policy",
		Long: `init prepares an empty MCIAS database: it creates the first Ed25519 signing key,
the admin account and a default policy rule allowing logins. The admin password
is read from --password-file (or $` + server.AdminPasswordEnv + `); when neither is given a
password is generated and printed once. Running init again on a database that
already has accounts changes nothing.`,
		Example: `  mcias init --config /srv/mcias/mcias.toml --password-file /run/secrets/mcias-admin
  mcias init --admin-username ops    # prints a generated password once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return server.Init(cmd.Context(), cfg, username, passwordFile, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&username, "admin-username", "admin", "username of the first admin")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the admin password")
	return cmd
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
		Example: `  mcias recover-admin admin --password-file /root/new-admin-password
  mcias recover-admin ops    # prints a generated password once`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return server.RecoverAdmin(cmd.Context(), cfg, args[0], passwordFile, cmd.OutOrStdout())
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
		Example: `  mcias system-account mcp-agent --token-file /srv/mcp/agent.token
  mcias system-account mcns --token-file /srv/mcns/mcias.token --ttl 720h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return server.SystemAccount(cmd.Context(), cfg, args[0], tokenFile, ttl, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file to write the token to (mode 0600; required)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime (default: the configured system_ttl, 365 days)")
	_ = cmd.MarkFlagRequired("token-file")
	return cmd
}
