// Command metacrypt is the Metacircular cryptographic service: server
// (gRPC, REST and the public CA endpoints, starting sealed), init (the
// database and the unseal password), status and snapshot.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/terminal"
	"git.metacircular.net/metacircular/metacrypt/internal/server"
)

var version = "dev"

func main() { service.Main(def()) }

func def() service.Def[*server.Config] {
	return service.Def[*server.Config]{
		Name:    server.ServiceName,
		Short:   "Metacrypt: the platform's CA, behind a seal",
		Version: version,
		Load:    server.LoadConfig,
		Logging: func(c *server.Config) logging.Config { return c.Log },
		ServerLong: `server serves the API on server.grpc_addr (gRPC) and server.listen_addr (REST,
with the public CA endpoints under /v1/pki/{mount}/), authenticating callers
against MCIAS. It starts SEALED: until "metacryptctl unseal" gives the unseal
password, every engine and policy call answers 503 / Unavailable, while
health, status, unseal and the public CA endpoints (root, chain, issuers,
CRLs) still answer. With pki.listen_addr the public endpoints are also served
over plain HTTP, for CRL and OCSP clients.`,
		Build:    server.Builder(version),
		Database: func(c *server.Config) string { return c.Database.Path },
		OpenDB:   server.OpenDB,
		Init:     initCmd,
		Status:   server.Status,
		Commands: []func(func() (*server.Config, error)) *cobra.Command{bootstrapCmd},
	}
}

func bootstrapCmd(load func() (*server.Config, error)) *cobra.Command {
	var r server.BootstrapRequest
	var passwordFile string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Offline: set up the platform CA (init, seed root, issuers, the agent's policy)",
		Long: `bootstrap works directly on the database, for provisioning without an admin
login (the local launcher runs it before every start). It sets the unseal
password if the barrier has none (otherwise the password must be the right
one), creates the CA mount, imports the seed root when the mount has no
root yet, creates the infra, services (names under svc.<domain>) and clients
issuers, and gives the agent account a rule to issue from services with a
limit to *.svc.<domain> unless it has rules already. What exists is left as
it is. Run it while the server is stopped.`,
		Example: `  metacrypt bootstrap --password-file /root/unseal --root-cert /srv/ca/ca.crt --root-key /srv/ca/ca.key --domain mcp.metacircular.net
  printf '%s\n' "$UNSEAL" | metacrypt bootstrap --password-file - --root-cert ca.crt --root-key ca.key --domain lab.example.net`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			pw, err := readPasswordFile(passwordFile)
			if err != nil {
				return err
			}
			defer clear(pw)
			r.Password = pw
			return server.Bootstrap(cmd.Context(), cfg, r, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the unseal password (- for standard input; required)")
	cmd.Flags().StringVar(&r.RootCertFile, "root-cert", "", "seed root certificate to import (PEM; required)")
	cmd.Flags().StringVar(&r.RootKeyFile, "root-key", "", "its private key (PEM; required)")
	cmd.Flags().StringVar(&r.Domain, "domain", "", "platform domain; the agent issues names under svc.<domain> (required)")
	cmd.Flags().StringVar(&r.Mount, "mount", "pki", "CA mount name")
	cmd.Flags().StringVar(&r.Agent, "agent", "mcp-agent", "system account that deploys services")
	for _, f := range []string{"password-file", "root-cert", "root-key", "domain"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

// readPasswordFile reads a password from a file, or from standard input
// for "-", without its line ending.
func readPasswordFile(path string) ([]byte, error) {
	if path == "-" {
		pw, err := terminal.ReadPasswordFrom(os.Stdin, os.Stderr, "")
		return []byte(pw), err
	}
	b, err := os.ReadFile(path) //nolint:gosec // operator-named file
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(b, "\r\n"), nil
}

func initCmd(load func() (*server.Config, error)) *cobra.Command {
	var dbOnly, passwordStdin bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the database and set the unseal password",
		Long: `init creates the database and, when the barrier has no unseal password yet,
sets it: asked twice without echo, or read from standard input with
--password-stdin. The password is the only way to unseal Metacrypt: if it is
lost, every key and secret is lost with it (RUNBOOK.md). Running init again
on an initialized database changes nothing. With --db-only only the database
is created; set the password later with "metacryptctl init" against the
running server.`,
		Example: `  metacrypt init --config /srv/metacrypt/metacrypt.toml
  printf '%s\n' "$UNSEAL_PASSWORD" | metacrypt init --password-stdin
  metacrypt init --db-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dbOnly && passwordStdin {
				return errors.New("--db-only and --password-stdin exclude each other")
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			var pw []byte
			if !dbOnly {
				done, err := server.Initialized(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				if !done {
					if pw, err = readNewPassword(passwordStdin); err != nil {
						return err
					}
					defer clear(pw)
				}
			}
			return server.Init(cmd.Context(), cfg, pw, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&dbOnly, "db-only", false, "create the database only; set the password later with metacryptctl init")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the unseal password from standard input")
	return cmd
}

func readNewPassword(stdin bool) ([]byte, error) {
	if stdin {
		pw, err := terminal.ReadPasswordFrom(os.Stdin, os.Stderr, "")
		return []byte(pw), err
	}
	pw, err := terminal.ReadPassword("New unseal password: ")
	if err != nil {
		return nil, err
	}
	again, err := terminal.ReadPassword("Repeat it: ")
	if err != nil {
		return nil, err
	}
	if pw != again {
		return nil, fmt.Errorf("the passwords differ; nothing changed")
	}
	return []byte(pw), nil
}
