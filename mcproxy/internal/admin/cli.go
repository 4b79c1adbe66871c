package admin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"git.metacircular.net/metacircular/mcdsl/cli"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	mcproxyv1 "git.metacircular.net/metacircular/mcproxy/gen/mcproxy/v1"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// callTimeout bounds one CLI call; admin calls are local and short.
const callTimeout = 15 * time.Second

// CLI is the client side of the admin socket shared by mcproxyctl and
// "mc-proxy status": the socket path and the output format, filled by the
// binaries' flags.
type CLI struct {
	// Socket returns the admin socket path (from a flag or the config).
	Socket func() (string, error)
	JSON   *bool
}

// call runs fn against the admin socket and prints its result as JSON
// (--json) or with table.
func call[T any](c CLI, cmd *cobra.Command, fn func(ctx context.Context, cl mcproxyv1.AdminServiceClient) (T, error), table func(w io.Writer, v T)) error {
	path, err := c.Socket()
	if err != nil {
		return err
	}
	cl, cc, err := Dial(path)
	if err != nil {
		return err
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(cmd.Context(), callTimeout)
	defer cancel()
	v, err := fn(ctx, cl)
	if err != nil {
		// One clear line: the server's message, not gRPC's wrapping.
		if s, ok := status.FromError(err); ok {
			return fmt.Errorf("%s (%s, socket %s)", s.Message(), strings.ToLower(s.Code().String()), path)
		}
		return err
	}
	return cli.Print(cmd.OutOrStdout(), c.JSON != nil && *c.JSON, v, func(tw *tabwriter.Writer) { table(tw, v) })
}

type statusJSON struct {
	Listeners       []ListenerStatus `json:"listeners"`
	OpenConnections int64            `json:"open_connections"`
	Routes          int32            `json:"routes"`
	FirewallRules   int32            `json:"firewall_rules"`
	Divergence      []string         `json:"divergence"`
	Database        string           `json:"database"`
}

type routeAdded struct {
	Route   route.Route `json:"route"`
	Created bool        `json:"created"`
}

type ruleAdded struct {
	Rule    route.Rule `json:"rule"`
	Created bool       `json:"created"`
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// StatusCommand is "status": listeners, counts, open connections and the
// TOML/database divergence, from the running mc-proxy.
func (c CLI) StatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the running mc-proxy's listeners, route counts, connections and TOML/database differences",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(c, cmd, func(ctx context.Context, cl mcproxyv1.AdminServiceClient) (statusJSON, error) {
				st, err := cl.Status(ctx, &mcproxyv1.StatusRequest{})
				if err != nil {
					return statusJSON{}, err
				}
				out := statusJSON{
					Listeners: []ListenerStatus{}, OpenConnections: st.GetOpenConnections(), Routes: st.GetRoutes(),
					FirewallRules: st.GetFirewallRules(), Divergence: st.GetDivergence(), Database: st.GetDatabase(),
				}
				if out.Divergence == nil {
					out.Divergence = []string{}
				}
				for _, l := range st.GetListeners() {
					out.Listeners = append(out.Listeners, ListenerStatus{Name: l.GetName(), Addr: l.GetAddr(), Routes: int(l.GetRoutes())})
				}
				return out, nil
			}, func(w io.Writer, v statusJSON) {
				st := v
				fmt.Fprintf(w, "database:\t%s\nroutes:\t%d\nfirewall rules:\t%d\nopen connections:\t%d\n\n",
					st.Database, st.Routes, st.FirewallRules, st.OpenConnections)
				fmt.Fprintln(w, "LISTENER\tADDRESS\tROUTES")
				for _, l := range st.Listeners {
					fmt.Fprintf(w, "%s\t%s\t%d\n", l.Name, dash(l.Addr), l.Routes)
				}
				if len(st.Divergence) == 0 {
					fmt.Fprintln(w, "\nmc-proxy.toml and the database agree")
					return
				}
				fmt.Fprintf(w, "\nmc-proxy.toml and the database differ (%d); the database is served:\n", len(st.Divergence))
				for _, d := range st.Divergence {
					fmt.Fprintf(w, "  %s\n", d)
				}
			})
		},
	}
}

// RoutesCommand is "routes list|add|remove".
func (c CLI) RoutesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "routes", Short: "List, add and remove routes"}
	var listener string
	list := &cobra.Command{
		Use:   "list",
		Short: "List routes (sorted by listener and host name)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(c, cmd, func(ctx context.Context, cl mcproxyv1.AdminServiceClient) ([]route.Route, error) {
				resp, err := cl.ListRoutes(ctx, &mcproxyv1.ListRoutesRequest{Listener: listener})
				if err != nil {
					return nil, err
				}
				out := []route.Route{}
				for _, r := range resp.GetRoutes() {
					out = append(out, RouteFromPB(r))
				}
				return out, nil
			}, func(w io.Writer, v []route.Route) {
				fmt.Fprintln(w, "LISTENER\tHOSTNAME\tMODE\tBACKEND\tBACKEND TLS\tPROXY PROTOCOL\tCERT")
				for _, r := range v {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Listener, r.Hostname, r.Mode, r.Backend,
						yes(r.BackendTLS), yes(r.SendProxyProtocol), dash(r.TLSCert))
				}
			})
		},
	}
	list.Flags().StringVar(&listener, "listener", "", "only this listener's routes")

	var r route.Route
	add := &cobra.Command{
		Use:   "add --listener NAME --hostname HOST --mode l4|l7 --backend HOST:PORT [flags]",
		Short: "Add a route, or replace the one with the same listener and host name",
		Long: `add stores the route in mc-proxy's database and switches the data plane to the
new route table in the same step; running it again with the same arguments
changes nothing. An l7 route needs --tls-cert and --tls-key (a full chain and
its key, readable by mc-proxy).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(c, cmd, func(ctx context.Context, cl mcproxyv1.AdminServiceClient) (routeAdded, error) {
				resp, err := cl.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: RoutePB(r)})
				if err != nil {
					return routeAdded{}, err
				}
				return routeAdded{RouteFromPB(resp.GetRoute()), resp.GetCreated()}, nil
			}, func(w io.Writer, v routeAdded) {
				res := v
				verb := "replaced"
				if res.Created {
					verb = "added"
				}
				fmt.Fprintf(w, "%s route %s/%s -> %s (%s)\n", verb, res.Route.Listener, res.Route.Hostname, res.Route.Backend, res.Route.Mode)
			})
		},
	}
	f := add.Flags()
	f.StringVar(&r.Listener, "listener", "", "listener name from mc-proxy.toml (required)")
	f.StringVar(&r.Hostname, "hostname", "", "SNI host name (required)")
	f.StringVar(&r.Mode, "mode", "", "l4 (TCP relay) or l7 (terminate TLS, proxy HTTP) (required)")
	f.StringVar(&r.Backend, "backend", "", "backend host:port (required)")
	f.StringVar(&r.TLSCert, "tls-cert", "", "l7: full-chain certificate file")
	f.StringVar(&r.TLSKey, "tls-key", "", "l7: private key file")
	f.BoolVar(&r.BackendTLS, "backend-tls", false, "l7: re-encrypt to the backend with TLS")
	f.StringVar(&r.BackendCA, "backend-ca", "", "l7: CA file verifying the backend (default: system roots)")
	f.StringVar(&r.BackendServerName, "backend-server-name", "", "l7: name verified on the backend certificate (default: the backend host)")
	f.BoolVar(&r.SendProxyProtocol, "send-proxy-protocol", false, "send a PROXY v2 header to the backend")
	for _, name := range []string{"listener", "hostname", "mode", "backend"} {
		_ = add.MarkFlagRequired(name)
	}

	remove := &cobra.Command{
		Use:   "remove LISTENER HOSTNAME",
		Short: "Remove a route",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(c, cmd, func(ctx context.Context, cl mcproxyv1.AdminServiceClient) (map[string]string, error) {
				if _, err := cl.RemoveRoute(ctx, &mcproxyv1.RemoveRouteRequest{Listener: args[0], Hostname: args[1]}); err != nil {
					return nil, err
				}
				return map[string]string{"removed": args[0] + "/" + args[1]}, nil
			}, func(w io.Writer, _ map[string]string) {
				fmt.Fprintf(w, "removed route %s/%s\n", args[0], args[1])
			})
		},
	}
	cmd.AddCommand(list, add, remove)
	return cmd
}

// FirewallCommand is "firewall list|add|remove".
func (c CLI) FirewallCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "firewall", Short: "List, add and remove firewall block rules"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List block rules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(c, cmd, func(ctx context.Context, cl mcproxyv1.AdminServiceClient) ([]route.Rule, error) {
				resp, err := cl.ListFirewallRules(ctx, &mcproxyv1.ListFirewallRulesRequest{})
				if err != nil {
					return nil, err
				}
				out := []route.Rule{}
				for _, r := range resp.GetRules() {
					out = append(out, route.Rule{Kind: r.GetKind(), Value: r.GetValue(), Reason: r.GetReason()})
				}
				return out, nil
			}, func(w io.Writer, v []route.Rule) {
				fmt.Fprintln(w, "KIND\tVALUE\tREASON")
				for _, r := range v {
					fmt.Fprintf(w, "%s\t%s\t%s\n", r.Kind, r.Value, dash(r.Reason))
				}
			})
		},
	}
	var reason string
	add := &cobra.Command{
		Use:   "add ip|cidr|country VALUE",
		Short: "Block an IP address, a CIDR network or a country (ISO 3166-1 alpha-2; needs firewall.geoip_db)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(c, cmd, func(ctx context.Context, cl mcproxyv1.AdminServiceClient) (ruleAdded, error) {
				resp, err := cl.AddFirewallRule(ctx, &mcproxyv1.AddFirewallRuleRequest{Rule: &mcproxyv1.FirewallRule{Kind: args[0], Value: args[1], Reason: reason}})
				if err != nil {
					return ruleAdded{}, err
				}
				return ruleAdded{route.Rule{Kind: resp.GetRule().GetKind(), Value: resp.GetRule().GetValue(), Reason: resp.GetRule().GetReason()}, resp.GetCreated()}, nil
			}, func(w io.Writer, v ruleAdded) {
				res := v
				verb := "updated"
				if res.Created {
					verb = "added"
				}
				fmt.Fprintf(w, "%s firewall rule %s:%s\n", verb, res.Rule.Kind, res.Rule.Value)
			})
		},
	}
	add.Flags().StringVar(&reason, "reason", "", "why (shown by firewall list)")
	remove := &cobra.Command{
		Use:   "remove ip|cidr|country VALUE",
		Short: "Remove a block rule",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(c, cmd, func(ctx context.Context, cl mcproxyv1.AdminServiceClient) (map[string]string, error) {
				if _, err := cl.RemoveFirewallRule(ctx, &mcproxyv1.RemoveFirewallRuleRequest{Kind: args[0], Value: args[1]}); err != nil {
					return nil, err
				}
				return map[string]string{"removed": args[0] + ":" + args[1]}, nil
			}, func(w io.Writer, _ map[string]string) {
				fmt.Fprintf(w, "removed firewall rule %s:%s\n", args[0], args[1])
			})
		},
	}
	cmd.AddCommand(list, add, remove)
	return cmd
}
