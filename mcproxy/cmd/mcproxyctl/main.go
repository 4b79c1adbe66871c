// Command mcproxyctl manages a running mc-proxy over its admin Unix socket:
// routes, firewall rules and status, through mcproxy/client. Who may use
// it is decided by the socket's file permissions (owner and group, mode
// 0660); there is no login.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcproxy/client"
	"git.metacircular.net/metacircular/mcproxy/internal/report"
)

var version = "dev"

// callTimeout bounds one call; admin calls are local and short.
const callTimeout = 15 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcproxyctl: %v\n", err)
		os.Exit(1)
	}
}

// tool holds the persistent flags.
type tool struct {
	socket string
	json   bool
}

func root() *cobra.Command {
	t := &tool{}
	cmd := &cobra.Command{
		Use:   "mcproxyctl",
		Short: "Manage a running mc-proxy's routes and firewall rules over its admin socket",
		Long: `mcproxyctl talks to mc-proxy's admin gRPC API on its Unix socket
(server.admin_socket). Changes are stored in mc-proxy's database and applied
to the data plane before the command returns; they survive restarts. Access
is the socket's file permissions: be the socket's owner or in its group.`,
		Example: `  mcproxyctl status
  mcproxyctl --socket /run/mc-proxy/admin.sock routes list
  METACIRCULAR_MCPROXY_SOCKET=/srv/mc-proxy/mc-proxy.sock mcproxyctl --json firewall list`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	socket := os.Getenv(client.EnvSocket)
	if socket == "" {
		socket = client.DefaultSocket
	}
	cmd.PersistentFlags().StringVar(&t.socket, "socket", socket, "mc-proxy admin socket, server.admin_socket ($"+client.EnvSocket+")")
	cmd.PersistentFlags().BoolVar(&t.json, "json", false, "print JSON instead of tables")
	cmd.AddCommand(t.routesCmd(), t.firewallCmd(), t.statusCmd())
	return cmd
}

// call runs fn on a client of the socket within callTimeout and prints
// its result as a table (table) or, with --json, as JSON.
func call[T any](t *tool, cmd *cobra.Command, fn func(context.Context, *client.Client) (T, error), table func(io.Writer, T)) error {
	c, err := client.New(t.socket)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(cmd.Context(), callTimeout)
	defer cancel()
	v, err := fn(ctx, c)
	if err != nil {
		if client.KindOf(err) == apierr.Unavailable {
			return fmt.Errorf("%w (socket %s)", err, t.socket)
		}
		return err
	}
	return cli.Print(cmd.OutOrStdout(), t.json, v, func(tw *tabwriter.Writer) { table(tw, v) })
}

func (t *tool) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the running mc-proxy's listeners, route counts, connections and TOML/database differences",
		Example: `  mcproxyctl status
  mcproxyctl --json status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(t, cmd, func(ctx context.Context, c *client.Client) (client.Status, error) {
				return c.Status(ctx)
			}, report.Status)
		},
	}
}

// routeAdded and ruleAdded are the answers of the add commands.
type routeAdded struct {
	Route   client.Route `json:"route"`
	Created bool         `json:"created"`
}

type ruleAdded struct {
	Rule    client.Rule `json:"rule"`
	Created bool        `json:"created"`
}

// removed is the JSON answer of the remove commands.
type removed struct {
	Removed string `json:"removed"`
}

func (t *tool) routesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "List, add and remove routes",
		Example: `  mcproxyctl routes list
  mcproxyctl routes add --listener https --hostname app.example.net --mode l4 --backend 10.0.0.5:8443
  mcproxyctl routes remove --listener https --hostname app.example.net`,
	}
	cmd.AddCommand(t.routesListCmd(), t.routesAddCmd(), t.routesRemoveCmd())
	return cmd
}

func (t *tool) routesListCmd() *cobra.Command {
	var listener string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List routes (sorted by listener and host name)",
		Example: `  mcproxyctl routes list
  mcproxyctl routes list --listener https
  mcproxyctl --json routes list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(t, cmd, func(ctx context.Context, c *client.Client) ([]client.Route, error) {
				return c.ListRoutes(ctx, listener)
			}, report.Routes)
		},
	}
	cmd.Flags().StringVar(&listener, "listener", "", "only this listener's routes")
	return cmd
}

func (t *tool) routesAddCmd() *cobra.Command {
	var r client.Route
	cmd := &cobra.Command{
		Use:   "add --listener NAME --hostname HOST --mode l4|l7 --backend HOST:PORT [flags]",
		Short: "Add a route, or replace the one with the same listener and host name",
		Long: `add stores the route in mc-proxy's database and switches the data plane to the
new route table in the same step; running it again with the same arguments
changes nothing. An l7 route needs --tls-cert and --tls-key (a full chain and
its key, readable by mc-proxy).

--backend-protocol is what an l7 route speaks to its backend, whatever the
client speaks to mc-proxy: http1 (HTTP/1.1, the default; every HTTP server
speaks it), h2c (HTTP/2 without TLS, for gRPC backends; not with
--backend-tls) or auto (with --backend-tls, ALPN offers h2 and http/1.1 and
the backend picks; without, HTTP/1.1).`,
		Example: `  mcproxyctl routes add --listener https --hostname app.example.net --mode l4 --backend 10.0.0.5:8443
  mcproxyctl routes add --listener https --hostname web.example.net --mode l7 --backend 127.0.0.1:8080 \
      --tls-cert /srv/mc-proxy/certs/web.crt --tls-key /srv/mc-proxy/certs/web.key
  mcproxyctl routes add --listener https --hostname api.example.net --mode l7 --backend 10.0.0.7:9443 \
      --tls-cert /srv/mc-proxy/certs/api.crt --tls-key /srv/mc-proxy/certs/api.key \
      --backend-tls --backend-ca /srv/ca/ca.crt --send-proxy-protocol
  mcproxyctl routes add --listener https --hostname grpc.example.net --mode l7 --backend 127.0.0.1:9090 \
      --tls-cert /srv/mc-proxy/certs/grpc.crt --tls-key /srv/mc-proxy/certs/grpc.key --backend-protocol h2c`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(t, cmd, func(ctx context.Context, c *client.Client) (routeAdded, error) {
				stored, created, err := c.AddRoute(ctx, r)
				return routeAdded{Route: stored, Created: created}, err
			}, func(w io.Writer, v routeAdded) { report.RouteAdded(w, v.Route, v.Created) })
		},
	}
	f := cmd.Flags()
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
	f.StringVar(&r.BackendProtocol, "backend-protocol", "", "l7: http1 (default), h2c (gRPC without TLS) or auto (ALPN h2/http1.1 with --backend-tls)")
	for _, name := range []string{"listener", "hostname", "mode", "backend"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (t *tool) routesRemoveCmd() *cobra.Command {
	var listener, hostname string
	cmd := &cobra.Command{
		Use:   "remove --listener NAME --hostname HOST",
		Short: "Remove a route",
		Long: `remove deletes the route from mc-proxy's database and the data plane. The
route is named with the same flags as "routes add"; the older form with two
arguments, LISTENER HOSTNAME, still works.`,
		Example: `  mcproxyctl routes remove --listener https --hostname app.example.net
  mcproxyctl routes remove https app.example.net`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return nil
			case len(args) != 2:
				return fmt.Errorf("expected --listener and --hostname (or LISTENER HOSTNAME), got %d argument(s)", len(args))
			case listener != "" || hostname != "":
				return errors.New("name the route with --listener and --hostname or with LISTENER HOSTNAME, not both")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				listener, hostname = args[0], args[1]
			}
			if listener == "" || hostname == "" {
				return errors.New("--listener and --hostname are required")
			}
			return call(t, cmd, func(ctx context.Context, c *client.Client) (removed, error) {
				return removed{listener + "/" + hostname}, c.RemoveRoute(ctx, listener, hostname)
			}, func(w io.Writer, v removed) { fmt.Fprintf(w, "removed route %s\n", v.Removed) })
		},
	}
	cmd.Flags().StringVar(&listener, "listener", "", "listener name from mc-proxy.toml")
	cmd.Flags().StringVar(&hostname, "hostname", "", "SNI host name")
	return cmd
}

func (t *tool) firewallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "firewall",
		Short: "List, add and remove firewall block rules",
		Example: `  mcproxyctl firewall list
  mcproxyctl firewall add ip 203.0.113.7 --reason "credential stuffing"
  mcproxyctl firewall remove ip 203.0.113.7`,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List block rules (sorted by kind and value)",
		Example: `  mcproxyctl firewall list
  mcproxyctl --json firewall list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(t, cmd, func(ctx context.Context, c *client.Client) ([]client.Rule, error) {
				return c.ListFirewallRules(ctx)
			}, report.Rules)
		},
	}
	var reason string
	add := &cobra.Command{
		Use:   "add ip|cidr|country VALUE",
		Short: "Block an IP address, a CIDR network or a country (ISO 3166-1 alpha-2; needs firewall.geoip_db)",
		Long: `add stores a block rule and applies it before returning; blocked clients get a
TCP reset on every listener. Adding a rule again replaces its reason. A
country rule on an mc-proxy without firewall.geoip_db is refused
(precondition failed) and nothing is stored.`,
		Example: `  mcproxyctl firewall add ip 203.0.113.7 --reason "credential stuffing"
  mcproxyctl firewall add cidr 198.51.100.0/24 --reason scanner
  mcproxyctl firewall add country XX`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(t, cmd, func(ctx context.Context, c *client.Client) (ruleAdded, error) {
				stored, created, err := c.AddFirewallRule(ctx, client.Rule{Kind: args[0], Value: args[1], Reason: reason})
				return ruleAdded{Rule: stored, Created: created}, err
			}, func(w io.Writer, v ruleAdded) { report.RuleAdded(w, v.Rule, v.Created) })
		},
	}
	add.Flags().StringVar(&reason, "reason", "", "why (shown by firewall list)")
	remove := &cobra.Command{
		Use:   "remove ip|cidr|country VALUE",
		Short: "Remove a block rule",
		Example: `  mcproxyctl firewall remove ip 203.0.113.7
  mcproxyctl firewall remove cidr 198.51.100.0/24`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(t, cmd, func(ctx context.Context, c *client.Client) (removed, error) {
				return removed{args[0] + ":" + args[1]}, c.RemoveFirewallRule(ctx, args[0], args[1])
			}, func(w io.Writer, v removed) { fmt.Fprintf(w, "removed firewall rule %s\n", v.Removed) })
		},
	}
	cmd.AddCommand(list, add, remove)
	return cmd
}
