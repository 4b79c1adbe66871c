// Command mcnsctl manages MCNS zones and records over its gRPC API. It
// logs in through MCIAS ("mcnsctl login") or uses a token given with
// --token or $MCNSCTL_TOKEN (a system account's token, for scripts).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/cli"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
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

// tool is mcnsctl's shared CLI state (flags, session, output).
var tool = &cli.Tool{Name: "mcnsctl", Service: "mcns", Login: mciasclient.CLILogin}

// newClient builds an API client with the session's or the flag's token.
func newClient() (*client.Client, error) {
	s, addr, err := tool.Server(true)
	if err != nil {
		return nil, err
	}
	return client.New(addr, s.CACert, s.Token)
}

func newRoot() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mcnsctl",
		Short: "Manage MCNS zones and records",
		Long: `mcnsctl talks to MCNS's gRPC record API. "mcnsctl login" logs in through MCIAS
and saves the MCNS address, the MCIAS address, the CA and the token to a
session file (mode 0600); later commands use it. --token or $MCNSCTL_TOKEN
use a token instead (for example a system account's). Addresses are gRPC
host:port pairs, from flags or $METACIRCULAR_MCNS, $METACIRCULAR_MCIAS and
$METACIRCULAR_CA. Output is a table; --json prints JSON for scripts.

Zones are named by their domain name (svc.mcp.metacircular.net). Record
names are relative to the zone (mcq), "@" for the apex, or absolute with a
trailing dot.`,
		Example: `  mcnsctl --server mcns.svc.mcp.metacircular.net:9443 --mcias mcias.svc.mcp.metacircular.net:9443 login -u admin
  mcnsctl records list svc.mcp.metacircular.net
  mcnsctl records add svc.mcp.metacircular.net mcq A 10.0.0.7`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	tool.Flags(cmd)
	cmd.AddCommand(tool.LoginCommand(), zonesCmd(), recordsCmd())
	return cmd
}

func zoneTable(w *tabwriter.Writer, zones []client.Zone) {
	fmt.Fprintln(w, "ZONE\tSERIAL\tPRIMARY NS\tADMIN\tTTL\tREFRESH\tRETRY\tEXPIRE\tMINIMUM")
	for _, z := range zones {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", z.Name, z.Serial, z.PrimaryNS, z.AdminEmail, z.TTL,
			z.Refresh, z.Retry, z.Expire, z.Minimum)
	}
}

func zonesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "zones", Short: "List, show, create, update and delete zones (changes: admin)",
		Example: "  mcnsctl zones list\n  mcnsctl zones show svc.mcp.metacircular.net"}
	run := func(fn func(ctx context.Context, c *client.Client, args []string) ([]client.Zone, any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			rows, v, err := fn(cmd.Context(), c, args)
			if err != nil || v == nil {
				return err
			}
			return tool.Print(cmd.OutOrStdout(), v, func(w *tabwriter.Writer) { zoneTable(w, rows) })
		}
	}
	list := &cobra.Command{Use: "list", Short: "List zones", Args: cobra.NoArgs,
		Example: "  mcnsctl zones list\n  mcnsctl zones list --json",
		RunE: run(func(ctx context.Context, c *client.Client, _ []string) ([]client.Zone, any, error) {
			l, err := c.ListZones(ctx)
			return l, l, err
		})}
	show := &cobra.Command{Use: "show ZONE", Short: "Show one zone", Args: cobra.ExactArgs(1),
		Example: "  mcnsctl zones show svc.mcp.metacircular.net",
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
		Example: "  mcnsctl zones create lab.example.net --primary-ns ns1.lab.example.net. --admin-email ops@example.net",
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Zone, any, error) {
			z, err := c.CreateZone(ctx, args[0], f)
			return []client.Zone{z}, z, err
		})}
	soaFlags(create, true)
	update := &cobra.Command{Use: "update ZONE", Short: "Change a zone's SOA fields and bump its serial (admin)", Args: cobra.ExactArgs(1),
		Example: "  mcnsctl zones update svc.mcp.metacircular.net --ttl 60",
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Zone, any, error) {
			z, err := c.UpdateZone(ctx, args[0], f)
			return []client.Zone{z}, z, err
		})}
	soaFlags(update, false)
	del := &cobra.Command{Use: "delete ZONE", Short: "Delete a zone and all its records (admin)", Args: cobra.ExactArgs(1),
		Example: "  mcnsctl zones delete lab.example.net",
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

func recordsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "records", Short: "List, show, add, update and delete records",
		Example: "  mcnsctl records list svc.mcp.metacircular.net --type A\n  mcnsctl records add svc.mcp.metacircular.net mcq A 10.0.0.7"}
	run := func(fn func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			rows, v, err := fn(cmd.Context(), c, args)
			if err != nil || v == nil {
				return err
			}
			return tool.Print(cmd.OutOrStdout(), v, func(w *tabwriter.Writer) { recordTable(w, rows) })
		}
	}
	var filter client.Filter
	list := &cobra.Command{Use: "list ZONE", Short: "List a zone's records", Args: cobra.ExactArgs(1),
		Example: "  mcnsctl records list svc.mcp.metacircular.net\n  mcnsctl records list svc.mcp.metacircular.net --name mcq --type A --json",
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error) {
			l, err := c.ListRecords(ctx, args[0], filter)
			return l, l, err
		})}
	list.Flags().StringVar(&filter.Name, "name", "", "only records with this name")
	list.Flags().StringVar(&filter.Type, "type", "", "only records of this type")
	show := &cobra.Command{Use: "show ZONE ID", Short: "Show one record", Args: cobra.ExactArgs(2),
		Example: "  mcnsctl records show svc.mcp.metacircular.net 12",
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
		Example: "  mcnsctl records add svc.mcp.metacircular.net mcq A 10.0.0.7\n  mcnsctl records add svc.mcp.metacircular.net _https._tcp.mcq SRV 0 5 443 mcq.svc.mcp.metacircular.net. --ttl 60",
		Args:    cobra.MinimumNArgs(4),
		RunE: run(func(ctx context.Context, c *client.Client, args []string) ([]client.Record, any, error) {
			r, err := c.CreateRecord(ctx, args[0], client.RecordFields{Name: args[1], Type: args[2], TTL: addTTL, Value: strings.Join(args[3:], " ")})
			return []client.Record{r}, r, err
		})}
	add.Flags().Uint32Var(&addTTL, "ttl", 0, "TTL in seconds (default: the zone's)")
	update := &cobra.Command{Use: "update ZONE ID NAME TYPE VALUE...", Short: "Replace a record", Args: cobra.MinimumNArgs(5),
		Example: "  mcnsctl records update svc.mcp.metacircular.net 12 mcq A 10.0.0.8",
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
		Example: "  mcnsctl records delete svc.mcp.metacircular.net 12",
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
