package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/cli"
	mcpv1 "git.metacircular.net/metacircular/mcp/gen/mcp/v1"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// nodeServices is one node's answer to ListServices.
type nodeServices struct {
	Node     string           `json:"node"`
	Error    string           `json:"error,omitempty"`
	Services []*mcpv1.Service `json:"services"`
}

func (a *app) listAll(ctx context.Context) ([]nodeServices, error) {
	nodes, err := a.nodes()
	if err != nil {
		return nil, err
	}
	var out []nodeServices
	for _, n := range nodes {
		ns := nodeServices{Node: n.Name}
		c, err := a.dial(ctx, n)
		if err == nil {
			ns.Services, err = c.ListServices(ctx)
			_ = c.Close()
		}
		if err != nil {
			ns.Error = err.Error()
		}
		out = append(out, ns)
	}
	return out, nil
}

func imageVersion(image string) string {
	if img, err := spec.ParseImage(image); err == nil {
		return img.Name() + ":" + img.Version()
	}
	return image
}

func uptime(in *mcpv1.Instance) string {
	if in.GetState() != "running" || in.GetStartedAt() == nil {
		return "-"
	}
	return time.Since(in.GetStartedAt().AsTime()).Truncate(time.Second).String()
}

func ports(in *mcpv1.Instance) string {
	var ps []string
	for _, p := range in.GetPorts() {
		ps = append(ps, fmt.Sprintf("%s:%d→%d", p.GetHostname(), p.GetListenerPort(), p.GetPort()))
	}
	if len(ps) == 0 {
		return "-"
	}
	return strings.Join(ps, " ")
}

func (a *app) psCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ps",
		Short: "List the containers of every service on every node",
		Long: `ps lists each node's services and their containers: state, the image
version running, the routes (host name:listener port → host port) and the
uptime. A container the runtime lost shows as "missing" (mcp-agent recover
brings it back).`,
		Example: "  mcp ps\n  mcp ps --node rift\n  mcp ps --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			all, err := a.listAll(ctx)
			if err != nil {
				return err
			}
			err = cli.Print(cmd.OutOrStdout(), a.asJSON, all, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NODE\tSERVICE\tCOMPONENT\tCONTAINER\tSTATE\tVERSION\tROUTES\tUPTIME")
				for _, ns := range all {
					if ns.Error != "" {
						fmt.Fprintf(w, "%s\t-\t-\t-\tunreachable\t-\t-\t%s\n", ns.Node, ns.Error)
						continue
					}
					for _, s := range ns.Services {
						for _, in := range s.GetInstances() {
							state := in.GetState()
							if s.GetDesired() == "stopped" {
								state += " (stopped)"
							}
							fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ns.Node, s.GetName(), in.GetComponent(), in.GetContainer(),
								state, imageVersion(in.GetImage()), ports(in), uptime(in))
						}
					}
				}
			})
			return err
		},
	}
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status [SERVICE]",
		Short: "Show a service in detail, or every service's health and drift",
		Long: `status SERVICE shows the service's desired state and revision, its containers,
the monitor's drift (what differs from the desired state and could not be
repaired: a container gone, an image changed, a route or DNS name missing),
flapping components, its recent operation steps and alerts. Without a
service it lists every service of every node with its drift.`,
		Example: "  mcp status hello\n  mcp status\n  mcp status hello --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				all, err := a.listAll(ctx)
				if err != nil {
					return err
				}
				return cli.Print(out, a.asJSON, all, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "NODE\tSERVICE\tDESIRED\tREVISION\tLAST OPERATION\tDRIFT")
					for _, ns := range all {
						if ns.Error != "" {
							fmt.Fprintf(w, "%s\t-\t-\t-\t-\tunreachable: %s\n", ns.Node, ns.Error)
						}
						for _, s := range ns.Services {
							drift := "none"
							if len(s.GetDrift()) > 0 {
								drift = strings.Join(s.GetDrift(), "; ")
							}
							if len(s.GetFlapping()) > 0 {
								drift += "; flapping: " + strings.Join(s.GetFlapping(), ", ")
							}
							fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", ns.Node, s.GetName(), s.GetDesired(), s.GetRevision(), s.GetLastOperation(), drift)
						}
					}
				})
			}
			n, err := a.nodeOf(args[0])
			if err != nil {
				return err
			}
			c, err := a.dial(ctx, n)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			resp, err := c.GetService(ctx, args[0])
			if err != nil {
				return err
			}
			return cli.Print(out, a.asJSON, resp, func(w *tabwriter.Writer) {
				s := resp.GetService()
				fmt.Fprintf(w, "service\t%s\nnode\t%s\ndesired\t%s\nrevision\t%d\nspec hash\t%.12s\n", s.GetName(), n.Name, s.GetDesired(), s.GetRevision(), s.GetSpecHash())
				fmt.Fprintf(w, "last operation\t%s\n", s.GetLastOperation())
				if s.GetLastError() != "" {
					fmt.Fprintf(w, "last error\t%s\n", firstLine(s.GetLastError()))
				}
				drift := "none"
				if len(s.GetDrift()) > 0 {
					drift = strings.Join(s.GetDrift(), "\n\t")
				}
				fmt.Fprintf(w, "drift\t%s\n", drift)
				if len(s.GetFlapping()) > 0 {
					fmt.Fprintf(w, "flapping\t%s (not restarted; mcp restart %s once fixed)\n", strings.Join(s.GetFlapping(), ", "), s.GetName())
				}
				fmt.Fprintln(w, "\nCOMPONENT\tCONTAINER\tSTATE\tVERSION\tREVISION\tROUTES\tUPTIME")
				for _, in := range s.GetInstances() {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", in.GetComponent(), in.GetContainer(), in.GetState(), imageVersion(in.GetImage()), in.GetRevision(), ports(in), uptime(in))
				}
				if events := resp.GetEvents(); len(events) > 0 {
					// The table shows the last 20 (--json has the last 50).
					events = events[max(0, len(events)-20):]
					fmt.Fprintln(w, "\nTIME\tOPERATION\tSTEP\tSTATE\tMESSAGE")
					for _, e := range events {
						fmt.Fprintf(w, "%s\t%s #%d\t%s\t%s\t%s\n", e.GetAt().AsTime().Local().Format("01-02 15:04:05"), e.GetKind(), e.GetOperation(), e.GetStep(), e.GetState(), firstLine(e.GetMessage()))
					}
				}
				if len(resp.GetAlerts()) > 0 {
					fmt.Fprintln(w, "\nTIME\tALERT\tMESSAGE")
					for _, al := range resp.GetAlerts() {
						fmt.Fprintf(w, "%s\t%s\t%s\n", al.GetAt().AsTime().Local().Format("01-02 15:04:05"), al.GetKind(), al.GetMessage())
					}
				}
			})
		},
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	var tail int
	var since string
	cmd := &cobra.Command{
		Use:   "logs SERVICE [COMPONENT]",
		Short: "Show (or follow) a service's container output",
		Long: `logs streams the output of a service's container (its first component unless
COMPONENT is given) from the node's agent. --follow keeps streaming until
Ctrl-C.`,
		Example: "  mcp logs hello\n  mcp logs hello web --follow --tail 50\n  mcp logs hello --since 10m",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.nodeOf(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if !follow {
				var cancel context.CancelFunc
				ctx, cancel = a.withTimeout(ctx)
				defer cancel()
			}
			c, err := a.dial(ctx, n)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			req := &mcpv1.LogsRequest{Service: args[0], Follow: follow, Tail: int32(tail), Since: since} //nolint:gosec // a line count
			if len(args) == 2 {
				req.Component = args[1]
			}
			return c.Logs(ctx, req, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new output")
	cmd.Flags().IntVar(&tail, "tail", 0, "only the last N lines (0: all)")
	cmd.Flags().StringVar(&since, "since", "", "only output since a duration (10m) or time (RFC 3339)")
	return cmd
}

// nodeRow is one line of "mcp node list".
type nodeRow struct {
	Node       string   `json:"node"`
	Address    string   `json:"address"`
	Addresses  []string `json:"addresses"`
	Arch       string   `json:"arch"`
	Status     string   `json:"status"`
	Version    string   `json:"version,omitempty"`
	Services   int32    `json:"services"`
	Containers int32    `json:"containers"`
	Running    int32    `json:"running"`
	Drift      int      `json:"drift"`
}

func (a *app) nodeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "The nodes of mcp.toml", Example: "  mcp node list"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the nodes and whether their agents answer",
		Long: `node list asks every node's agent (its addresses in order) for its state:
agent version, services, containers running, drift.`,
		Example: "  mcp node list\n  mcp node list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nodes, err := a.nodes()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			var rows []nodeRow
			for _, n := range nodes {
				r := nodeRow{Node: n.Name, Addresses: n.All(), Arch: n.Arch, Status: "unreachable"}
				c, err := a.dial(ctx, n)
				if err == nil {
					r.Address = c.Addr
					st, serr := c.NodeStatus(ctx)
					_ = c.Close()
					if serr == nil {
						r.Status, r.Version, r.Services, r.Containers, r.Running, r.Drift = "ok", st.GetVersion(), st.GetServices(), st.GetContainers(), st.GetRunning(), len(st.GetDrift())
					} else {
						r.Status = "error: " + serr.Error()
					}
				}
				rows = append(rows, r)
			}
			return cli.Print(cmd.OutOrStdout(), a.asJSON, rows, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NODE\tADDRESS\tARCH\tSTATUS\tVERSION\tSERVICES\tRUNNING\tDRIFT")
				for _, r := range rows {
					addr := r.Address
					if addr == "" {
						addr = strings.Join(r.Addresses, ",")
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d/%d\t%d\n", r.Node, addr, r.Arch, r.Status, r.Version, r.Services, r.Running, r.Containers, r.Drift)
				}
			})
		},
	}
	cmd.AddCommand(list)
	return cmd
}

func (a *app) agentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "The nodes' agents", Example: "  mcp agent status\n  mcp agent recover rift"}
	status := &cobra.Command{
		Use:     "status [NODE]",
		Short:   "Show each agent's version, runtime, boot state, drift and recent alerts",
		Example: "  mcp agent status\n  mcp agent status rift --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				a.node = args[0]
			}
			nodes, err := a.nodes()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			var all []*mcpv1.NodeStatusResponse
			var failed []string
			for _, n := range nodes {
				c, err := a.dial(ctx, n)
				if err != nil {
					failed = append(failed, err.Error())
					continue
				}
				st, err := c.NodeStatus(ctx)
				_ = c.Close()
				if err != nil {
					failed = append(failed, fmt.Sprintf("node %s: %v", n.Name, err))
					continue
				}
				all = append(all, st)
			}
			err = cli.Print(cmd.OutOrStdout(), a.asJSON, all, func(w *tabwriter.Writer) {
				for _, st := range all {
					fmt.Fprintf(w, "node\t%s (%s, domain %s)\nagent\t%s, up %s\nruntime\t%s %s\nboot\t%s\nservices\t%d, containers %d running of %d\n",
						st.GetNode(), st.GetAddress(), st.GetDomain(), st.GetVersion(), time.Since(st.GetStartedAt().AsTime()).Truncate(time.Second),
						st.GetRuntime(), st.GetRuntimeVersion(), st.GetBoot(), st.GetServices(), st.GetRunning(), st.GetContainers())
					drift := "none"
					if len(st.GetDrift()) > 0 {
						drift = strings.Join(st.GetDrift(), "\n\t")
					}
					fmt.Fprintf(w, "drift\t%s\n", drift)
					for _, al := range st.GetAlerts() {
						fmt.Fprintf(w, "alert\t%s %s %s: %s\n", al.GetAt().AsTime().Local().Format("01-02 15:04:05"), al.GetKind(), al.GetService(), al.GetMessage())
					}
					fmt.Fprintln(w)
				}
			})
			if err != nil {
				return err
			}
			if len(failed) > 0 {
				return fmt.Errorf("%s", strings.Join(failed, "; "))
			}
			return nil
		},
	}
	rec := &cobra.Command{
		Use:   "recover NODE [SERVICE...]",
		Short: "Recreate a node's containers from its agent's registry",
		Long: `agent recover asks a node's agent to bring back every running service (or the
named ones) whose containers the runtime lost: containers created again
with their ports, volumes and environment, images pulled again, health
checked, routes and DNS names registered again. The same as running
"mcp-agent recover" on the node.`,
		Example: "  mcp agent recover rift\n  mcp agent recover rift mcns",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			n, err := cfg.Node(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			c, err := a.dial(ctx, n)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			out := cmd.OutOrStdout()
			final, err := c.Recover(ctx, args[1:], a.progress(out))
			return a.result(out, "recover", strings.Join(append([]string{"services"}, args[1:]...), " "), n.Name, final, err)
		},
	}
	cmd.AddCommand(status, rec)
	return cmd
}
