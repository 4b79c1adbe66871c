// Command mciasctl administers MCIAS: login, accounts, roles, system tokens,
// login policies, TOTP and signing keys, over MCIAS's gRPC API (mcias/client)
// with the token saved by "mciasctl login".
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

	"git.metacircular.net/metacircular/mcdsl/apierr"
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

// tool is mciasctl's shared CLI state: the --mcias, --ca, --token,
// --session and --json flags, the session file and the login command.
var tool = &cli.Tool{Name: "mciasctl", Login: client.CLILogin}

// sessionPath reads the --session flag (set by newRoot): the session file
// whose token a credential change replaces.
var sessionPath func() string

// withClient runs fn with a client for the session's (or the flags')
// MCIAS and token, closing it afterwards. When MCIAS answers a credential
// change of the caller's own account (password, TOTP on or off) with a
// fresh token — the change revoked the old one — the session file gets it.
func withClient(fn func(c *client.Client) error) error {
	s, addr, err := tool.Server(true)
	if err != nil {
		return err
	}
	c, err := client.New(addr, s.CACert, s.Token)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	used := s.Token
	c.OnToken(func(t client.Token) {
		if err := replaceSessionToken(used, t); err != nil {
			fmt.Fprintf(os.Stderr, "mciasctl: warning: saving the new token: %v; run mciasctl login\n", err)
		}
		used = t.Token
	})
	return fn(c)
}

// replaceSessionToken puts t into the session file in place of used, if
// the file holds used (a --token or $MCIASCTL_TOKEN token is not the
// session's; the file is left alone then). A zero t drops the token.
func replaceSessionToken(used string, t client.Token) error {
	if sessionPath == nil {
		return nil
	}
	path := sessionPath()
	var s cli.Session
	if err := cli.LoadSession(path, &s); err != nil {
		return err
	}
	if s.Token == "" || s.Token != used {
		return nil
	}
	s.Token, s.ExpiresAt = t.Token, t.ExpiresAt
	return cli.SaveSession(path, s)
}

func newRoot() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mciasctl",
		Short: "Administer MCIAS, the Metacircular identity service",
		Long: `mciasctl talks to MCIAS's gRPC API. "mciasctl login" saves the MCIAS address,
the CA and the token to a session file (mode 0600); later commands use it.
--token or $MCIASCTL_TOKEN use a token instead (for example a system
account's). The address is MCIAS's gRPC host:port (its server.grpc_addr),
from --mcias or $METACIRCULAR_MCIAS; the CA from --ca or $METACIRCULAR_CA.
Accounts may be named by username or ID. Output is a table; --json prints
JSON for scripts.`,
		Example: `  mciasctl --mcias mcias.svc.mcp.metacircular.net:9443 --ca /srv/ca/ca.crt login -u admin
  mciasctl accounts list
  mciasctl --json accounts show alice`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	tool.Flags(cmd)
	sessionPath = cmd.PersistentFlags().Lookup("session").Value.String
	// --server was the REST URL before mciasctl spoke gRPC; say what to
	// pass instead of "unknown flag".
	var oldServer string
	cmd.PersistentFlags().StringVar(&oldServer, "server", "", "")
	_ = cmd.PersistentFlags().MarkHidden("server")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		if oldServer != "" {
			return fmt.Errorf("--server is gone: mciasctl talks gRPC; pass --mcias host:port (MCIAS's server.grpc_addr) or set $%s", cli.EnvMCIAS)
		}
		return nil
	}
	cmd.AddCommand(tool.LoginCommand(), logoutCmd(), whoamiCmd(), accountsCmd(), rolesCmd(), tokenCmd(),
		policiesCmd(), totpCmd(), keysCmd())
	return cmd
}

func logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Revoke the session's token and forget it",
		Example: "  mciasctl logout",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := withClient(func(c *client.Client) error { return c.Logout(cmd.Context()) })
			// A token MCIAS no longer accepts is as good as revoked.
			if err != nil && client.KindOf(err) != apierr.Unauthenticated {
				return err
			}
			return tool.ForgetToken()
		},
	}
}

func whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "whoami",
		Short:   "Show the account behind the current token",
		Example: "  mciasctl whoami\n  mciasctl --json whoami",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(func(c *client.Client) error {
				id, err := c.WhoAmI(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), id, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "USERNAME\tTYPE\tROLES\tEXPIRES\n%s\t%s\t%s\t%s\n", id.Username, id.AccountType,
						strings.Join(id.Roles, ","), id.ExpiresAt.Local().Format(time.RFC3339))
				})
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

func accountsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "accounts", Short: "List, create, change and delete accounts (admin)",
		Example: "  mciasctl accounts list\n  mciasctl accounts create alice --role user"}
	// run prints the account(s) fn returns; v nil prints nothing.
	run := func(fn func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return withClient(func(c *client.Client) error {
				v, rows, err := fn(cmd.Context(), c, args)
				if err != nil || v == nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), v, func(w *tabwriter.Writer) { accountTable(w, rows) })
			})
		}
	}
	list := &cobra.Command{Use: "list", Short: "List accounts", Args: cobra.NoArgs,
		Example: "  mciasctl accounts list\n  mciasctl --json accounts list",
		RunE: run(func(ctx context.Context, c *client.Client, _ []string) (any, []client.Account, error) {
			l, err := c.ListAccounts(ctx)
			return l, l, err
		})}
	show := &cobra.Command{Use: "show ACCOUNT", Short: "Show one account", Args: cobra.ExactArgs(1),
		Example: "  mciasctl accounts show alice\n  mciasctl --json accounts show 6f1c2a9e-...",
		RunE: run(func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error) {
			a, err := c.GetAccount(ctx, args[0])
			return a, []client.Account{a}, err
		})}
	var system, passwordStdin bool
	var roles []string
	create := &cobra.Command{Use: "create USERNAME", Short: "Create a human (default) or --system account", Args: cobra.ExactArgs(1),
		Example: `  mciasctl accounts create alice --role user,guest    # asks for the password twice
  printf '%s\n' "$PASSWORD" | mciasctl accounts create bob --password-stdin
  mciasctl accounts create --system mcns-agent`,
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
			Example: "  mciasctl accounts " + use + " alice",
			RunE: run(func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error) {
				a, err := c.UpdateAccount(ctx, args[0], client.UpdateAccountRequest{Status: &value})
				return a, []client.Account{a}, err
			})}
	}
	var resetStdin bool
	setPassword := &cobra.Command{Use: "set-password ACCOUNT", Short: "Reset an account's password (admin); ends all the account's sessions", Args: cobra.ExactArgs(1),
		Example: "  mciasctl accounts set-password alice    # asks for the new password twice\n" +
			"  printf '%s\\n' \"$PASSWORD\" | mciasctl accounts set-password alice --password-stdin",
		RunE: run(func(ctx context.Context, c *client.Client, args []string) (any, []client.Account, error) {
			pw, err := readNewPassword(resetStdin)
			if err != nil {
				return nil, nil, err
			}
			a, err := c.UpdateAccount(ctx, args[0], client.UpdateAccountRequest{Password: &pw})
			if err != nil {
				return a, []client.Account{a}, err
			}
			// A reset revokes every token of the account: when it was the
			// caller's own, this session is gone too.
			if _, werr := c.WhoAmI(ctx); client.KindOf(werr) == apierr.Unauthenticated {
				fmt.Fprintf(os.Stderr, "mciasctl: the password of %s (your own account) was reset, which ended all its sessions, this one too: run mciasctl login\n", a.Username)
			}
			return a, []client.Account{a}, nil
		})}
	setPassword.Flags().BoolVar(&resetStdin, "password-stdin", false, "read the password from standard input")
	del := &cobra.Command{Use: "delete ACCOUNT", Short: "Delete an account and its tokens", Args: cobra.ExactArgs(1),
		Example: "  mciasctl accounts delete alice",
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

func rolesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "roles", Short: "Set an account's roles (admin)",
		Example: "  mciasctl roles set alice user,guest"}
	cmd.AddCommand(&cobra.Command{
		Use: "set ACCOUNT ROLE[,ROLE...]", Short: "Replace the roles (admin, user, guest; \"none\" for no roles)", Args: cobra.ExactArgs(2),
		Example: "  mciasctl roles set alice admin\n  mciasctl roles set bob user,guest\n  mciasctl roles set carol none",
		RunE: func(cmd *cobra.Command, args []string) error {
			roles := []string{}
			if args[1] != "none" {
				roles = strings.Split(args[1], ",")
			}
			return withClient(func(c *client.Client) error {
				a, err := c.SetRoles(cmd.Context(), args[0], roles)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), a, func(w *tabwriter.Writer) { accountTable(w, []client.Account{a}) })
			})
		},
	})
	return cmd
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Issue, list and revoke tokens",
		Example: "  mciasctl token issue mcns-agent --ttl 720h\n  mciasctl token list alice"}
	var ttl time.Duration
	issue := &cobra.Command{Use: "issue ACCOUNT", Short: "Issue a long-lived token for a system account (no password)", Args: cobra.ExactArgs(1),
		Example: "  mciasctl token issue mcns-agent\n  mciasctl token issue mcns-agent --ttl 720h > mcns-agent.token",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(func(c *client.Client) error {
				t, err := c.IssueSystemToken(cmd.Context(), args[0], ttl)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), t, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "%s\n", t.Token)
				})
			})
		}}
	issue.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (default: the server's system_ttl, 365 days)")
	list := &cobra.Command{Use: "list ACCOUNT", Short: "List an account's unexpired tokens", Args: cobra.ExactArgs(1),
		Example: "  mciasctl token list alice\n  mciasctl --json token list mcns-agent",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(func(c *client.Client) error {
				l, err := c.ListTokens(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "JTI\tKIND\tISSUED\tEXPIRES\tREVOKED")
					for _, t := range l {
						rev := "-"
						if t.RevokedAt != nil {
							rev = t.RevokedAt.Local().Format(time.RFC3339)
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.JTI, t.Kind, t.IssuedAt.Local().Format(time.RFC3339), t.ExpiresAt.Local().Format(time.RFC3339), rev)
					}
				})
			})
		}}
	revoke := &cobra.Command{Use: "revoke JTI", Short: "Revoke a token by its jti", Args: cobra.ExactArgs(1),
		Example: "  mciasctl token revoke 9b1f0c4e2a7d4e31",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(func(c *client.Client) error { return c.RevokeToken(cmd.Context(), args[0]) })
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

func policyID(arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("policy id %q: expected a number", arg)
	}
	return id, nil
}

func policiesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policies", Short: "Manage login policy rules (lower priority numbers are evaluated first; no match denies)",
		Example: "  mciasctl policies list\n  mciasctl policies create --priority 5 --effect deny --role guest --service mcp"}
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
		return tool.Print(cmd.OutOrStdout(), v, func(w *tabwriter.Writer) { policyTable(w, []client.Policy{v}) })
	}
	listCmd := &cobra.Command{Use: "list", Short: "List rules in evaluation order", Args: cobra.NoArgs,
		Example: "  mciasctl policies list\n  mciasctl --json policies list",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(func(c *client.Client) error {
				l, err := c.ListPolicies(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) { policyTable(w, l) })
			})
		}}
	create := &cobra.Command{Use: "create", Short: "Add a rule", Args: cobra.NoArgs,
		Example: `  mciasctl policies create --priority 5 --effect deny --role guest --service mcp --description "guests stay out of mcp"
  mciasctl policies create --priority 10 --effect allow --account-type system --action auth:login --tag env:prod`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(func(c *client.Client) error {
				out, err := c.CreatePolicy(cmd.Context(), p)
				if err != nil {
					return err
				}
				return show(cmd, out)
			})
		}}
	flags(create)
	update := &cobra.Command{Use: "update ID", Short: "Replace a rule (all fields as given)", Args: cobra.ExactArgs(1),
		Example: "  mciasctl policies update 7 --priority 5 --effect allow --role admin --action auth:login",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := policyID(args[0])
			if err != nil {
				return err
			}
			p.ID = id
			return withClient(func(c *client.Client) error {
				out, err := c.UpdatePolicy(cmd.Context(), p)
				if err != nil {
					return err
				}
				return show(cmd, out)
			})
		}}
	flags(update)
	del := &cobra.Command{Use: "delete ID", Short: "Remove a rule", Args: cobra.ExactArgs(1),
		Example: "  mciasctl policies delete 7",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := policyID(args[0])
			if err != nil {
				return err
			}
			return withClient(func(c *client.Client) error { return c.DeletePolicy(cmd.Context(), id) })
		}}
	cmd.AddCommand(listCmd, create, update, del)
	return cmd
}

func totpCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "totp", Short: "Enrol, confirm or disable TOTP for your account",
		Example: "  mciasctl totp enroll\n  mciasctl totp confirm 123456"}
	// self runs fn with a client and the caller's account ID.
	self := func(ctx context.Context, fn func(c *client.Client, id string) error) error {
		return withClient(func(c *client.Client) error {
			id, err := c.WhoAmI(ctx)
			if err != nil {
				return err
			}
			return fn(c, id.Subject)
		})
	}
	enroll := &cobra.Command{Use: "enroll", Short: "Create a TOTP secret (shown once); then run totp confirm CODE", Args: cobra.NoArgs,
		Example: "  mciasctl totp enroll",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return self(cmd.Context(), func(c *client.Client, id string) error {
				e, err := c.EnrollTOTP(cmd.Context(), id)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), e, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "secret:\t%s\nuri:\t%s\n", e.Secret, e.URI)
				})
			})
		}}
	confirm := &cobra.Command{Use: "confirm CODE", Short: "Activate TOTP with a code from the app; prints recovery codes once", Args: cobra.ExactArgs(1),
		Example: "  mciasctl totp confirm 123456",
		RunE: func(cmd *cobra.Command, args []string) error {
			return self(cmd.Context(), func(c *client.Client, id string) error {
				codes, err := c.ConfirmTOTP(cmd.Context(), id, args[0])
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), codes, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "TOTP enabled; your other sessions were signed out. Recovery codes (each works once; store them safely):")
					for _, code := range codes {
						fmt.Fprintln(w, "  "+code)
					}
				})
			})
		}}
	var account string
	disable := &cobra.Command{Use: "disable [CODE]", Short: "Turn TOTP off (with a code; admins may reset another --account without one)", Args: cobra.MaximumNArgs(1),
		Example: "  mciasctl totp disable 123456\n  mciasctl totp disable --account alice    # admin: alice lost her device",
		RunE: func(cmd *cobra.Command, args []string) error {
			return self(cmd.Context(), func(c *client.Client, id string) error {
				if account != "" {
					id = account
				}
				code := ""
				if len(args) == 1 {
					code = args[0]
				}
				return c.DisableTOTP(cmd.Context(), id, code)
			})
		}}
	disable.Flags().StringVar(&account, "account", "", "another account to reset (admin)")
	cmd.AddCommand(enroll, confirm, disable)
	return cmd
}

func keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List and rotate token signing keys (admin)",
		Example: "  mciasctl keys list\n  mciasctl keys rotate"}
	table := func(w *tabwriter.Writer, l []client.Key) {
		fmt.Fprintln(w, "KID\tCREATED\tACTIVE")
		for _, k := range l {
			fmt.Fprintf(w, "%s\t%s\t%v\n", k.ID, k.CreatedAt.Local().Format(time.RFC3339), k.Active)
		}
	}
	listCmd := &cobra.Command{Use: "list", Short: "List signing keys", Args: cobra.NoArgs,
		Example: "  mciasctl keys list\n  mciasctl --json keys list",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(func(c *client.Client) error {
				l, err := c.ListKeys(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) { table(w, l) })
			})
		}}
	rotate := &cobra.Command{Use: "rotate", Short: "Make a new signing key; tokens signed by older keys stay valid until they expire", Args: cobra.NoArgs,
		Example: "  mciasctl keys rotate",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(func(c *client.Client) error {
				k, err := c.RotateKey(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), k, func(w *tabwriter.Writer) { table(w, []client.Key{k}) })
			})
		}}
	cmd.AddCommand(listCmd, rotate)
	return cmd
}
