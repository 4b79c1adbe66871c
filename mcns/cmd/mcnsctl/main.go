// Command mcnsctl manages MCNS zones and records over the REST API. It logs
// in through MCIAS ("mcnsctl login") or uses a token given with --token or
// $MCNS_TOKEN (a system account's token, for scripts).
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

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/terminal"
	"git.metacircular.net/metacircular/mcns/client"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcnsctl: %v\n", err)
		os.Exit(1)
	}
}

// session is what "login" saves, mode 0600.
type session struct {
	Server    string    `json:"server"`
	MCIAS     string    `json:"mcias"`
	CACert    string    `json:"ca_cert,omitempty"`
	Username  string    `json:"username"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

type globals struct {
	server, mcias, caCert, token, sessionPath string
	json                                      bool
}

// load merges the saved session with the flags; flags win.
func (g *globals) load() session {
	var s session
	if err := cli.LoadSession(g.sessionPath, &s); err != nil {
		fmt.Fprintf(os.Stderr, "mcnsctl: warning: %v\n", err)
	}
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&s.Server, g.server}, {&s.MCIAS, g.mcias}, {&s.CACert, g.caCert}, {&s.Token, g.token},
	} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	return s
}

// client builds an API client with the session's or the flag's token.
func (g *globals) client() (*client.Client, error) {
	s := g.load()
	if s.Server == "" {
		return nil, errors.New("no server: pass --server or $MCNS_SERVER, or run mcnsctl login")
	}
	if s.Token == "" {
		return nil, errors.New("not logged in: run mcnsctl login (or pass --token / $MCNS_TOKEN)")
	}
	return client.New(s.Server, s.CACert, s.Token)
}

func (g *globals) print(out io.Writer, v any, table func(*tabwriter.Writer)) error {
	return cli.Print(out, g.json, v, table)
}

func newRoot() *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "mcnsctl",
		Short: "Manage MCNS zones and records",
		Long: `mcnsctl talks to the MCNS REST API. "mcnsctl login" logs in through MCIAS and
saves the MCNS server, the MCIAS server, the CA and the token to a session
file (mode 0600); later commands use it. --token or $MCNS_TOKEN use a token
instead (for example a system account's). Output is a table; --json prints
JSON for scripts.

Zones are named by their domain name (svc.mcp.metacircular.net). Record
names are relative to the zone (mcq), "@" for the apex, or absolute with a
trailing dot.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&g.server, "server", os.Getenv("MCNS_SERVER"), "MCNS URL, e.g. https://mcns.svc.mcp.metacircular.net:8443 ($MCNS_SERVER)")
	f.StringVar(&g.mcias, "mcias", os.Getenv("MCIAS_SERVER"), "MCIAS URL for login ($MCIAS_SERVER)")
	f.StringVar(&g.caCert, "ca", os.Getenv("MCNS_CA_CERT"), "CA certificate to trust for MCNS and MCIAS ($MCNS_CA_CERT)")
	f.StringVar(&g.token, "token", os.Getenv("MCNS_TOKEN"), "MCIAS bearer token to use instead of the session's ($MCNS_TOKEN)")
	f.StringVar(&g.sessionPath, "session", cli.SessionPath("mcnsctl"), "session file")
	f.BoolVar(&g.json, "json", false, "print JSON")
	cmd.AddCommand(loginCmd(g), zonesCmd(g), recordsCmd(g))
	return cmd
}

func loginCmd(g *globals) *cobra.Command {
	var username, totpCode string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in through MCIAS and save the session",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := g.load()
			if s.Server == "" || s.MCIAS == "" {
				return errors.New("login needs --server (MCNS) and --mcias (MCIAS) the first time")
			}
			if username == "" {
				username = s.Username
			}
			if username == "" {
				return errors.New("--username is required")
			}
			mcias, err := auth.New(config.MCIAS{ServerURL: s.MCIAS, CACert: s.CACert, ServiceName: "mcnsctl"}, auth.Options{})
			if err != nil {
				return err
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
			t, err := mcias.Login(cmd.Context(), username, pw, totpCode)
			if errors.Is(err, auth.ErrTOTPRequired) && totpCode == "" && !passwordStdin {
				code, rerr := terminal.ReadPassword("TOTP code: ")
				if rerr != nil {
					return rerr
				}
				t, err = mcias.Login(cmd.Context(), username, pw, code)
			}
			if err != nil {
				return err
			}
			s.Username, s.Token, s.ExpiresAt = username, t.Token, t.ExpiresAt
			if err := cli.SaveSession(g.sessionPath, s); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in as %s until %s\n", username, t.ExpiresAt.Local().Format(time.RFC1123))
			return nil
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "MCIAS username")
	cmd.Flags().StringVar(&totpCode, "totp", "", "TOTP or recovery code (prompted when required)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (scripts)")
	return cmd
}

func zoneTable(w *tabwriter.Writer, zones []client.Zone) {
	fmt.Fprintln(w, "ZONE\tSERIAL\tPRIMARY NS\tADMIN\tTTL\tREFRESH\tRETRY\tEXPIRE\tMINIMUM")
	for _, z := range zones {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", z.Name, z.Serial, z.PrimaryNS, z.AdminEmail, z.TTL,
			z.Refresh, z.Retry, z.Expire, z.Minimum)
	}
}

func zonesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "zones", Short: "List, show, create, update and delete zones (changes: admin)"}
	run := func(fn func(ctx context.Context, c *client.Client, args []string) ([]client.Zone, any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			rows, v, err := fn(cmd.Context(), c, args)
			if err != nil || v == nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(w *tabwriter.Writer) { zoneTable(w, rows) })
		}
	}
	list := &cobra.Command{Use: "list", Short: "List zones", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, c *client.Client, _ []string) ([]client.Zone, any, error) {
			l, err := c.ListZones(ctx)
			return l, l, err
		})}
	show := &cobra.Command{Use: "show ZONE", Short: "Show one zone", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Zone, any, error) {
			z, err := c.GetZone(ctx, args[0])
			return []client.Zone{z}, z, err
		})}
	var f client.ZoneFields
	soaFlags := func(cmd *cobra.Command, create bool) {
		help := func(what, def string) string {
			if create {
				return what + " (default " + def + ")"
			}
			return what + " (unset: keep the current value)"
		}
		cmd.Flags().StringVar(&f.PrimaryNS, "primary-ns", "", help("SOA primary name server", "ns.<zone>"))
		cmd.Flags().StringVar(&f.AdminEmail, "admin-email", "", help("SOA contact, e.g. hostmaster@example.net", "hostmaster.<zone>"))
		cmd.Flags().Uint32Var(&f.TTL, "ttl", 0, help("default record TTL in seconds", "300"))
		cmd.Flags().Uint32Var(&f.Minimum, "minimum", 0, help("negative-caching TTL in seconds", "300"))
		cmd.Flags().Uint32Var(&f.Refresh, "refresh", 0, help("SOA refresh in seconds", "3600"))
		cmd.Flags().Uint32Var(&f.Retry, "retry", 0, help("SOA retry in seconds", "600"))
		cmd.Flags().Uint32Var(&f.Expire, "expire", 0, help("SOA expire in seconds", "1209600"))
	}
	create := &cobra.Command{Use: "create ZONE", Short: "Create a zone (admin)", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Zone, any, error) {
			z, err := c.CreateZone(ctx, args[0], f)
			return []client.Zone{z}, z, err
		})}
	soaFlags(create, true)
	update := &cobra.Command{Use: "update ZONE", Short: "Change a zone's SOA fields and bump its serial (admin)", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Zone, any, error) {
			z, err := c.UpdateZone(ctx, args[0], f)
			return []client.Zone{z}, z, err
		})}
	soaFlags(update, false)
	del := &cobra.Command{Use: "delete ZONE", Short: "Delete a zone and all its records (admin)", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Zone, any, error) {
			return nil, nil, c.DeleteZone(ctx, args[0])
		})}
	cmd.AddCommand(list, show, create, update, del)
	return cmd
}

func recordTable(w *tabwriter.Writer, list []client.Record) {
	fmt.Fprintln(w, "ID\tNAME\tTYPE\tTTL\tVALUE")
	for _, r := range list {
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", r.ID, r.Name, r.Type, r.TTL, r.Value)
	}
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("record id %q: want a positive integer (see mcnsctl records list)", s)
	}
	return id, nil
}

func recordsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "records", Short: "List, show, add, update and delete records"}
	run := func(fn func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			rows, v, err := fn(cmd.Context(), c, args)
			if err != nil || v == nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(w *tabwriter.Writer) { recordTable(w, rows) })
		}
	}
	var filter client.Filter
	list := &cobra.Command{Use: "list ZONE", Short: "List a zone's records", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error) {
			l, err := c.ListRecords(ctx, args[0], filter)
			return l, l, err
		})}
	list.Flags().StringVar(&filter.Name, "name", "", "only records with this name")
	list.Flags().StringVar(&filter.Type, "type", "", "only records of this type")
	show := &cobra.Command{Use: "show ZONE ID", Short: "Show one record", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error) {
			id, err := parseID(args[1])
			if err != nil {
				return nil, nil, err
			}
			r, err := c.GetRecord(ctx, args[0], id)
			return []client.Record{r}, r, err
		})}
	var addTTL, updateTTL uint32
	add := &cobra.Command{Use: "add ZONE NAME TYPE VALUE...", Short: "Add a record (VALUE words are joined: SRV 0 5 443 host.)",
		Args: cobra.MinimumNArgs(4),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error) {
			r, err := c.CreateRecord(ctx, args[0], client.RecordFields{Name: args[1], Type: args[2], TTL: addTTL, Value: strings.Join(args[3:], " ")})
			return []client.Record{r}, r, err
		})}
	add.Flags().Uint32Var(&addTTL, "ttl", 0, "TTL in seconds (default: the zone's)")
	update := &cobra.Command{Use: "update ZONE ID NAME TYPE VALUE...", Short: "Replace a record", Args: cobra.MinimumNArgs(5),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error) {
			id, err := parseID(args[1])
			if err != nil {
				return nil, nil, err
			}
			r, err := c.UpdateRecord(ctx, args[0], id, client.RecordFields{Name: args[2], Type: args[3], TTL: updateTTL, Value: strings.Join(args[4:], " ")})
			return []client.Record{r}, r, err
		})}
	update.Flags().Uint32Var(&updateTTL, "ttl", 0, "TTL in seconds (default: the zone's)")
	del := &cobra.Command{Use: "delete ZONE ID", Short: "Delete a record", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error) {
			id, err := parseID(args[1])
			if err != nil {
				return nil, nil, err
			}
			return nil, nil, c.DeleteRecord(ctx, args[0], id)
		})}
	cmd.AddCommand(list, show, add, update, del)
	return cmd
}
