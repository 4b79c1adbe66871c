// Command mciasctl administers MCIAS: login, accounts, roles, system tokens,
// login policies, TOTP and signing keys. It talks to the REST API with the
// token saved by "mciasctl login".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"git.metacircular.net/metacircular/mcdsl/cli"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/terminal"
	"git.metacircular.net/metacircular/mcias/client"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mciasctl: %v\n", err)
		os.Exit(1)
	}
}

// session is what "login" saves, mode 0600.
type session struct {
	Server    string    `json:"server"`
	CACert    string    `json:"ca_cert,omitempty"`
	Username  string    `json:"username"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

type globals struct {
	server, caCert, token, sessionPath string
	json                               bool
}

func (g *globals) load() session {
	var s session
	if err := cli.LoadSession(g.sessionPath, &s); err != nil {
		fmt.Fprintf(os.Stderr, "mciasctl: warning: %v\n", err)
	}
	if g.server != "" {
		s.Server = g.server
	}
	if g.caCert != "" {
		s.CACert = g.caCert
	}
	if g.token != "" {
		s.Token = g.token
	}
	return s
}

// client builds an API client; authenticated calls need a token.
func (g *globals) client(needToken bool) (*client.Client, session, error) {
	s := g.load()
	if s.Server == "" {
		return nil, s, errors.New("no server: pass --server or $MCIAS_SERVER, or run mciasctl login")
	}
	if needToken && s.Token == "" {
		return nil, s, errors.New("not logged in: run mciasctl login (or pass --token / $MCIAS_TOKEN)")
	}
	c, err := client.New(s.Server, s.CACert, s.Token)
	return c, s, err
}

func (g *globals) print(out io.Writer, v any, table func(*tabwriter.Writer)) error {
	return cli.Print(out, g.json, v, table)
}

func newRoot() *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "mciasctl",
		Short: "Administer MCIAS, the Metacircular identity service",
		Long: `mciasctl talks to the MCIAS REST API. "mciasctl login" saves the server, CA
and token to a session file (mode 0600); later commands use it. Accounts may be
named by username or ID. Output is a table; --json prints JSON for scripts.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&g.server, "server", os.Getenv("MCIAS_SERVER"), "MCIAS URL, e.g. https://mcias.svc.mcp.metacircular.net:8443 ($MCIAS_SERVER)")
	f.StringVar(&g.caCert, "ca", os.Getenv("MCIAS_CA_CERT"), "CA certificate to trust ($MCIAS_CA_CERT)")
	f.StringVar(&g.token, "token", os.Getenv("MCIAS_TOKEN"), "bearer token to use instead of the session's ($MCIAS_TOKEN)")
	f.StringVar(&g.sessionPath, "session", cli.SessionPath("mciasctl"), "session file")
	f.BoolVar(&g.json, "json", false, "print JSON")
	cmd.AddCommand(loginCmd(g), logoutCmd(g), whoamiCmd(g), accountsCmd(g), rolesCmd(g), tokenCmd(g),
		policiesCmd(g), totpCmd(g), keysCmd(g))
	return cmd
}

func loginCmd(g *globals) *cobra.Command {
	var username, totpCode, serviceName string
	var tags []string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in and save the session",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, s, err := g.client(false)
			if err != nil {
				return err
			}
			if username == "" {
				username = s.Username
			}
			if username == "" {
				return errors.New("--username is required")
			}
			var pw string
			if passwordStdin {
				pw, err = terminal.ReadPasswordFrom(os.Stdin, io.Discard, "")
			} else {
				pw, err = terminal.ReadPassword("Password for " + username + ": ")
			}
			if err != nil {
				return err
			}
			req := client.LoginRequest{Username: username, Password: pw, TOTPCode: totpCode, ServiceName: serviceName, Tags: tags}
			t, err := c.Login(cmd.Context(), req)
			if err != nil && strings.Contains(err.Error(), "totp code required") && !passwordStdin {
				code, rerr := terminal.ReadPassword("TOTP code: ")
				if rerr != nil {
					return rerr
				}
				req.TOTPCode = code
				t, err = c.Login(cmd.Context(), req)
			}
			if err != nil {
				return fmt.Errorf("login: %w", err)
			}
			s.Username, s.Token, s.ExpiresAt = username, t.Token, t.ExpiresAt
			if err := cli.SaveSession(g.sessionPath, s); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in as %s until %s\n", username, t.ExpiresAt.Local().Format(time.RFC1123))
			return nil
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "username")
	cmd.Flags().StringVar(&totpCode, "totp", "", "TOTP or recovery code (prompted when required)")
	cmd.Flags().StringVar(&serviceName, "service-name", "mciasctl", "service_name sent for login policy")
	cmd.Flags().StringSliceVar(&tags, "tag", nil, "tag sent for login policy (repeatable)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (scripts)")
	return cmd
}

func logoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke the session's token and forget it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, s, err := g.client(true)
			if err != nil {
				return err
			}
			if err := c.Logout(cmd.Context()); err != nil && client.StatusOf(err) != 401 {
				return err
			}
			s.Token, s.ExpiresAt = "", time.Time{}
			return cli.SaveSession(g.sessionPath, s)
		},
	}
}

func whoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the account behind the current token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			id, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), id, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "USERNAME\tTYPE\tROLES\tEXPIRES\n%s\t%s\t%s\t%s\n", id.Username, id.AccountType,
					strings.Join(id.Roles, ","), id.ExpiresAt.Local().Format(time.RFC3339))
			})
		},
	}
}

func accountTable(w *tabwriter.Writer, list []client.Account) {
	fmt.Fprintln(w, "USERNAME\tTYPE\tSTATUS\tROLES\tTOTP\tID")
	for _, a := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\n", a.Username, a.AccountType, a.Status, strings.Join(a.Roles, ","), a.TOTPEnabled, a.ID)
	}
}

func accountsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "accounts", Short: "List, create, change and delete accounts"}
	run := func(fn func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			v, rows, err := fn(cmd.Context(), c, args)
			if err != nil {
				return err
			}
			if v == nil {
				return nil
			}
			return g.print(cmd.OutOrStdout(), v, func(w *tabwriter.Writer) { accountTable(w, rows) })
		}
	}
	list := &cobra.Command{Use: "list", Short: "List accounts", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, c *client.Client, _ []string) (any, []client.Account, error) {
			l, err := c.ListAccounts(ctx)
			return l, l, err
		})}
	show := &cobra.Command{Use: "show ACCOUNT", Short: "Show one account", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error) {
			a, err := c.GetAccount(ctx, args[0])
			return a, []client.Account{a}, err
		})}
	var system, passwordStdin bool
	var roles []string
	create := &cobra.Command{Use: "create USERNAME", Short: "Create a human (default) or --system account", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error) {
			req := client.CreateAccountRequest{Username: args[0], AccountType: "human", Roles: roles}
			if system {
				req.AccountType = "system"
			} else {
				pw, err := readNewPassword(passwordStdin)
				if err != nil {
					return nil, nil, err
				}
				req.Password = pw
			}
			a, err := c.CreateAccount(ctx, req)
			return a, []client.Account{a}, err
		})}
	create.Flags().BoolVar(&system, "system", false, "create a system (service) account: no password, no roles")
	create.Flags().StringSliceVar(&roles, "role", nil, "role for a human account: admin, user, guest (repeatable; default user)")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	status := func(use, value string) *cobra.Command {
		return &cobra.Command{Use: use + " ACCOUNT", Short: strings.ToUpper(use[:1]) + use[1:] + " an account", Args: cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error) {
				a, err := c.UpdateAccount(ctx, args[0], client.UpdateAccountRequest{Status: &value})
				return a, []client.Account{a}, err
			})}
	}
	var resetStdin bool
	setPassword := &cobra.Command{Use: "set-password ACCOUNT", Short: "Reset an account's password (admin)", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error) {
			pw, err := readNewPassword(resetStdin)
			if err != nil {
				return nil, nil, err
			}
			a, err := c.UpdateAccount(ctx, args[0], client.UpdateAccountRequest{Password: &pw})
			return a, []client.Account{a}, err
		})}
	setPassword.Flags().BoolVar(&resetStdin, "password-stdin", false, "read the password from standard input")
	del := &cobra.Command{Use: "delete ACCOUNT", Short: "Delete an account and its tokens", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error) {
			return nil, nil, c.DeleteAccount(ctx, args[0])
		})}
	cmd.AddCommand(list, show, create, status("disable", "disabled"), status("enable", "active"), setPassword, del)
	return cmd
}

func readNewPassword(stdin bool) (string, error) {
	if stdin {
		return terminal.ReadPasswordFrom(os.Stdin, io.Discard, "")
	}
	pw, err := terminal.ReadPassword("New password: ")
	if err != nil {
		return "", err
	}
	again, err := terminal.ReadPassword("Repeat: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("passwords do not match")
	}
	return pw, nil
}

func rolesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "roles", Short: "Set an account's roles"}
	cmd.AddCommand(&cobra.Command{
		Use: "set ACCOUNT ROLE[,ROLE...]", Short: "Replace the roles (admin, user, guest; \"none\" for no roles)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			roles := []string{}
			if args[1] != "none" {
				roles = strings.Split(args[1], ",")
			}
			a, err := c.SetRoles(cmd.Context(), args[0], roles)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), a, func(w *tabwriter.Writer) { accountTable(w, []client.Account{a}) })
		},
	})
	return cmd
}

func tokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Issue, list and revoke tokens"}
	var ttl time.Duration
	issue := &cobra.Command{Use: "issue ACCOUNT", Short: "Issue a long-lived token for a system account (no password)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			t, err := c.IssueSystemToken(cmd.Context(), args[0], ttl)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), t, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "%s\n", t.Token)
			})
		}}
	issue.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (default: the server's system_ttl, 365 days)")
	list := &cobra.Command{Use: "list ACCOUNT", Short: "List an account's unexpired tokens", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			l, err := c.ListTokens(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "JTI\tKIND\tISSUED\tEXPIRES\tREVOKED")
				for _, t := range l {
					rev := "-"
					if t.RevokedAt != nil {
						rev = t.RevokedAt.Local().Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.JTI, t.Kind, t.IssuedAt.Local().Format(time.RFC3339), t.ExpiresAt.Local().Format(time.RFC3339), rev)
				}
			})
		}}
	revoke := &cobra.Command{Use: "revoke JTI", Short: "Revoke a token by its jti", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			return c.RevokeToken(cmd.Context(), args[0])
		}}
	cmd.AddCommand(issue, list, revoke)
	return cmd
}

func policyTable(w *tabwriter.Writer, l []client.Policy) {
	fmt.Fprintln(w, "ID\tPRIORITY\tEFFECT\tROLES\tTYPES\tACTIONS\tSERVICES\tTAGS\tDESCRIPTION")
	for _, p := range l {
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Priority, p.Effect, list(p.Roles), list(p.AccountTypes),
			list(p.Actions), list(p.ServiceNames), list(p.RequiredTags), p.Description)
	}
}

func list(l []string) string {
	if len(l) == 0 {
		return "*"
	}
	return strings.Join(l, ",")
}

func policiesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policies", Short: "Manage login policy rules (lower priority numbers are evaluated first; no match denies)"}
	var p client.Policy
	flags := func(c *cobra.Command) {
		c.Flags().IntVar(&p.Priority, "priority", 100, "evaluation order (lower first)")
		c.Flags().StringVar(&p.Effect, "effect", "", "allow or deny (required)")
		c.Flags().StringSliceVar(&p.Roles, "role", nil, "match accounts with any of these roles")
		c.Flags().StringSliceVar(&p.AccountTypes, "account-type", nil, "match human and/or system accounts")
		c.Flags().StringSliceVar(&p.Actions, "action", nil, "match actions, e.g. auth:login")
		c.Flags().StringSliceVar(&p.ServiceNames, "service", nil, "match the calling service_name ('*' any)")
		c.Flags().StringSliceVar(&p.RequiredTags, "tag", nil, "require all of these tags")
		c.Flags().StringVar(&p.Description, "description", "", "note shown in listings and logs")
	}
	show := func(cmd *cobra.Command, v client.Policy) error {
		return g.print(cmd.OutOrStdout(), v, func(w *tabwriter.Writer) { policyTable(w, []client.Policy{v}) })
	}
	listCmd := &cobra.Command{Use: "list", Short: "List rules in evaluation order", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			l, err := c.ListPolicies(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) { policyTable(w, l) })
		}}
	create := &cobra.Command{Use: "create", Short: "Add a rule", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			out, err := c.CreatePolicy(cmd.Context(), p)
			if err != nil {
				return err
			}
			return show(cmd, out)
		}}
	flags(create)
	update := &cobra.Command{Use: "update ID", Short: "Replace a rule (all fields as given)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("policy id %q: expected a number", args[0])
			}
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			p.ID = id
			out, err := c.UpdatePolicy(cmd.Context(), p)
			if err != nil {
				return err
			}
			return show(cmd, out)
		}}
	flags(update)
	del := &cobra.Command{Use: "delete ID", Short: "Remove a rule", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("policy id %q: expected a number", args[0])
			}
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			return c.DeletePolicy(cmd.Context(), id)
		}}
	cmd.AddCommand(listCmd, create, update, del)
	return cmd
}

func totpCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "totp", Short: "Enrol, confirm or disable TOTP for your account"}
	self := func(ctx context.Context) (*client.Client, string, error) {
		c, _, err := g.client(true)
		if err != nil {
			return nil, "", err
		}
		id, err := c.WhoAmI(ctx)
		if err != nil {
			return nil, "", err
		}
		return c, id.Subject, nil
	}
	enroll := &cobra.Command{Use: "enroll", Short: "Create a TOTP secret (shown once); then run totp confirm CODE", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, id, err := self(cmd.Context())
			if err != nil {
				return err
			}
			e, err := c.EnrollTOTP(cmd.Context(), id)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), e, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "secret:\t%s\nuri:\t%s\n", e.Secret, e.URI)
			})
		}}
	confirm := &cobra.Command{Use: "confirm CODE", Short: "Activate TOTP with a code from the app; prints recovery codes once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, err := self(cmd.Context())
			if err != nil {
				return err
			}
			codes, err := c.ConfirmTOTP(cmd.Context(), id, args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), codes, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "TOTP enabled. Recovery codes (each works once; store them safely):")
				for _, code := range codes {
					fmt.Fprintln(w, "  "+code)
				}
			})
		}}
	var account string
	disable := &cobra.Command{Use: "disable [CODE]", Short: "Turn TOTP off (with a code; admins may reset another --account without one)", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, err := self(cmd.Context())
			if err != nil {
				return err
			}
			if account != "" {
				id = account
			}
			code := ""
			if len(args) == 1 {
				code = args[0]
			}
			return c.DisableTOTP(cmd.Context(), id, code)
		}}
	disable.Flags().StringVar(&account, "account", "", "another account to reset (admin)")
	cmd.AddCommand(enroll, confirm, disable)
	return cmd
}

func keysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List and rotate token signing keys"}
	table := func(w *tabwriter.Writer, l []client.Key) {
		fmt.Fprintln(w, "KID\tCREATED\tACTIVE")
		for _, k := range l {
			fmt.Fprintf(w, "%s\t%s\t%v\n", k.ID, k.CreatedAt.Local().Format(time.RFC3339), k.Active)
		}
	}
	listCmd := &cobra.Command{Use: "list", Short: "List signing keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			l, err := c.ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) { table(w, l) })
		}}
	rotate := &cobra.Command{Use: "rotate", Short: "Make a new signing key; tokens signed by older keys stay valid until they expire", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client(true)
			if err != nil {
				return err
			}
			k, err := c.RotateKey(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), k, func(w *tabwriter.Writer) { table(w, []client.Key{k}) })
		}}
	cmd.AddCommand(listCmd, rotate)
	return cmd
}
