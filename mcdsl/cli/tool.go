package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/terminal"
)

// The environment every platform CLI reads (flags win over it, and it wins
// over the saved session).
const (
	// EnvMCIAS is MCIAS's gRPC address (host:port), where tools log in.
	EnvMCIAS = "METACIRCULAR_MCIAS"
	// EnvCA is the CA certificate file every tool trusts.
	EnvCA = "METACIRCULAR_CA"
)

// ServerEnv is the environment variable holding a service's gRPC address:
// METACIRCULAR_<SERVICE> (METACIRCULAR_MCNS, ...).
func ServerEnv(service string) string {
	return "METACIRCULAR_" + strings.ToUpper(strings.ReplaceAll(service, "-", "_"))
}

// TokenEnv is the environment variable holding a bearer token for a tool:
// <TOOL>_TOKEN (MCNSCTL_TOKEN, ...), for scripts using a system account.
func TokenEnv(tool string) string {
	return strings.ToUpper(strings.ReplaceAll(tool, "-", "_")) + "_TOKEN"
}

// Session is what "login" saves (mode 0600) and later commands reuse.
type Session struct {
	Server    string    `json:"server,omitempty"`
	MCIAS     string    `json:"mcias,omitempty"`
	CACert    string    `json:"ca_cert,omitempty"`
	Username  string    `json:"username,omitempty"`
	Token     string    `json:"token,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LoginRequest is a password login a tool sends to MCIAS.
type LoginRequest struct {
	Username, Password, TOTPCode, ServiceName string
	Tags                                      []string
}

// LoginFunc logs in at MCIAS (gRPC address mcias, trusting caFile) and
// returns the token and its expiry. Tools pass mcias/client's login.
// An error of kind apierr.Unauthenticated whose text mentions "totp"
// makes the login command ask for a TOTP code.
type LoginFunc func(ctx context.Context, mcias, caFile string, req LoginRequest) (token string, expires time.Time, err error)

// Tool is what every platform CLI shares: the --server, --mcias, --ca,
// --token, --session and --json flags with their environment defaults,
// the session file, the login and logout commands and table or JSON
// output.
type Tool struct {
	// Name is the binary ("mcnsctl").
	Name string
	// Service is the service it manages ("mcns"); its address comes from
	// --server or ServerEnv(Service). Empty for a tool whose server is
	// MCIAS itself (mciasctl), which uses --mcias only.
	Service string
	// Login logs in at MCIAS.
	Login LoginFunc

	server, mcias, caCert, token, sessionPath string
	// JSON is --json.
	JSON bool
}

// Flags adds the persistent flags to root.
func (t *Tool) Flags(root *cobra.Command) {
	f := root.PersistentFlags()
	if t.Service != "" {
		f.StringVar(&t.server, "server", os.Getenv(ServerEnv(t.Service)),
			fmt.Sprintf("%s gRPC address, host:port ($%s)", t.Service, ServerEnv(t.Service)))
	}
	f.StringVar(&t.mcias, "mcias", os.Getenv(EnvMCIAS), "MCIAS gRPC address for login, host:port ($"+EnvMCIAS+")")
	f.StringVar(&t.caCert, "ca", os.Getenv(EnvCA), "CA certificate to trust ($"+EnvCA+"; default: the system roots)")
	f.StringVar(&t.token, "token", os.Getenv(TokenEnv(t.Name)), "MCIAS bearer token to use instead of the session's ($"+TokenEnv(t.Name)+")")
	f.StringVar(&t.sessionPath, "session", SessionPath(t.Name), "session file")
	f.BoolVar(&t.JSON, "json", false, "print JSON instead of tables")
}

// Session is the saved session with the flags (and environment) applied.
func (t *Tool) Session() Session {
	var s Session
	if err := LoadSession(t.sessionPath, &s); err != nil {
		fmt.Fprintf(os.Stderr, "%s: warning: %v\n", t.Name, err)
	}
	for _, f := range []struct {
		dst *string
		v   string
	}{{&s.Server, t.server}, {&s.MCIAS, t.mcias}, {&s.CACert, t.caCert}, {&s.Token, t.token}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	return s
}

// Server returns the service's address (or MCIAS's, for a tool without a
// Service) and whether a token is at hand, failing with a message that
// says what to pass.
func (t *Tool) Server(needToken bool) (Session, string, error) {
	s := t.Session()
	addr, flag, env := s.Server, "--server", ServerEnv(t.Service)
	if t.Service == "" {
		addr, flag, env = s.MCIAS, "--mcias", EnvMCIAS
	}
	if addr == "" {
		return s, "", fmt.Errorf("no server: pass %s or set $%s, or run %s login", flag, env, t.Name)
	}
	if needToken && s.Token == "" {
		return s, "", fmt.Errorf("not logged in: run %s login (or pass --token / $%s)", t.Name, TokenEnv(t.Name))
	}
	return s, addr, nil
}

// Print writes v as a table (table) or, with --json, as JSON.
func (t *Tool) Print(out io.Writer, v any, table func(*tabwriter.Writer)) error {
	return Print(out, t.JSON, v, table)
}

// LoginCommand is "login": ask for the password without echo (or read it
// from standard input with --password-stdin), log in at MCIAS, ask for a
// TOTP code when the account needs one, and save the session.
func (t *Tool) LoginCommand() *cobra.Command {
	var username, totpCode, serviceName string
	var tags []string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in through MCIAS and save the session",
		Long: `login asks for the password (never echoed), logs in at MCIAS and saves the
servers, the CA and the token to the session file (mode 0600), which later
commands use. The first login needs the addresses, from flags or from the
environment; later ones reuse the session's.`,
		Example: fmt.Sprintf(`  %[1]s login -u alice
  %[1]s --mcias mcias.svc.mcp.metacircular.net:9443 --ca /srv/ca/ca.crt login -u alice
  printf '%%s\n' "$PASSWORD" | %[1]s login -u ci-bot --password-stdin`, t.Name),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := t.Session()
			if t.Service != "" && s.Server == "" {
				return fmt.Errorf("login needs the %s address the first time: pass --server or set $%s", t.Service, ServerEnv(t.Service))
			}
			if s.MCIAS == "" {
				return fmt.Errorf("login needs MCIAS's address: pass --mcias or set $%s", EnvMCIAS)
			}
			if username == "" {
				username = s.Username
			}
			if username == "" {
				return errors.New("--username is required")
			}
			var pw string
			var err error
			if passwordStdin {
				pw, err = terminal.ReadPasswordFrom(os.Stdin, io.Discard, "")
			} else {
				pw, err = terminal.ReadPassword("Password for " + username + ": ")
			}
			if err != nil {
				return err
			}
			req := LoginRequest{Username: username, Password: pw, TOTPCode: totpCode, ServiceName: serviceName, Tags: tags}
			tok, exp, err := t.Login(cmd.Context(), s.MCIAS, s.CACert, req)
			if totpNeeded(err) && totpCode == "" && !passwordStdin {
				code, rerr := terminal.ReadPassword("TOTP code: ")
				if rerr != nil {
					return rerr
				}
				req.TOTPCode = code
				tok, exp, err = t.Login(cmd.Context(), s.MCIAS, s.CACert, req)
			}
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			s.Username, s.Token, s.ExpiresAt = username, tok, exp
			if err := SaveSession(t.sessionPath, s); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in as %s until %s\n", username, exp.Local().Format(time.RFC1123))
			return nil
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "MCIAS username (default: the session's)")
	cmd.Flags().StringVar(&totpCode, "totp", "", "TOTP or recovery code (prompted when required)")
	cmd.Flags().StringVar(&serviceName, "service-name", t.Name, "service_name sent for login policy")
	cmd.Flags().StringSliceVar(&tags, "tag", nil, "tag sent for login policy (repeatable)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (scripts)")
	return cmd
}

func totpNeeded(err error) bool {
	return err != nil && apierr.KindOf(err) == apierr.Unauthenticated && strings.Contains(strings.ToLower(err.Error()), "totp")
}

// ForgetToken drops the token from the session file (logout).
func (t *Tool) ForgetToken() error {
	var s Session
	if err := LoadSession(t.sessionPath, &s); err != nil {
		return err
	}
	s.Token, s.ExpiresAt = "", time.Time{}
	return SaveSession(t.sessionPath, s)
}
