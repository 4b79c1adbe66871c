package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcp/client"
	mcpv1 "git.metacircular.net/metacircular/mcp/gen/mcp/v1"
	"git.metacircular.net/metacircular/mcp/internal/reconcile"
	"git.metacircular.net/metacircular/mcp/internal/spec"
	"git.metacircular.net/metacircular/mcp/internal/specpb"
)

// progress prints an operation's events as they come: the step, its
// state, the time since the operation began and what happened. With
// --json each event is one JSON line.
func (a *app) progress(out io.Writer) func(*mcpv1.OperationEvent) {
	start := time.Now()
	return func(ev *mcpv1.OperationEvent) {
		if a.asJSON {
			b, _ := json.Marshal(map[string]any{"operation": ev.GetOperation(), "service": ev.GetService(), "kind": ev.GetKind(),
				"step": ev.GetStep(), "state": ev.GetState(), "message": ev.GetMessage(), "final": ev.GetFinal(),
				"result": ev.GetResult(), "error": ev.GetError()})
			fmt.Fprintln(out, string(b))
			return
		}
		if ev.GetFinal() {
			return
		}
		msg := ev.GetMessage()
		if i := strings.IndexByte(msg, '\n'); i >= 0 && ev.GetState() != "failed" {
			msg = msg[:i]
		}
		fmt.Fprintf(out, "  %6.1fs  %-12s %-10s %-8s %s\n", time.Since(start).Seconds(), ev.GetService(), ev.GetStep(), ev.GetState(), msg)
	}
}

// result prints an operation's outcome line.
func (a *app) result(out io.Writer, verb, service, node string, final *mcpv1.OperationEvent, err error) error {
	if err != nil {
		return err
	}
	if !a.asJSON {
		fmt.Fprintf(out, "%s %s on %s: %s\n", verb, service, node, final.GetResult())
	}
	return nil
}

func (a *app) deployCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "deploy SERVICE",
		Short: "Deploy (or redeploy) a service from its definition",
		Long: `deploy sends the service's definition (<services dir>/SERVICE.toml, or --file)
to its node's agent, which allocates ports, provisions certificates for
L7 routes from Metacrypt, pulls the image from MCR, creates and starts the
new containers, waits for their health check, switches the mc-proxy
routes, registers the DNS names in MCNS and records the new revision. A
redeploy runs the new version beside the old one and switches only once it
is healthy; a failed health check leaves the old version serving and says
why. Progress is shown step by step; the deploy goes on if mcp is
interrupted (see it with mcp status).`,
		Example: `  mcp deploy hello
  mcp deploy hello --file ./hello.toml --node rift
  mcp deploy hello --json | jq -c 'select(.final)'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if file == "" {
				file = cfg.Services.Dir + "/" + args[0] + ".toml"
			}
			sp, err := spec.ParseFile(file)
			if err != nil {
				return err
			}
			if sp.Name != args[0] {
				return fmt.Errorf("%s defines service %q, not %q", file, sp.Name, args[0])
			}
			n, err := cfg.NodeFor(sp)
			if a.node != "" {
				n, err = cfg.Node(a.node)
			}
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
			if !a.asJSON {
				fmt.Fprintf(out, "deploying %s to %s (%s)\n", sp.Name, n.Name, c.Addr)
			}
			final, err := c.Deploy(ctx, specpb.ToPB(sp), a.progress(out))
			return a.result(out, "deploy", sp.Name, n.Name, final, err)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "definition file (default <services dir>/SERVICE.toml)")
	return cmd
}

// opCmd is undeploy, stop, start or restart.
func (a *app) opCmd(verb string) *cobra.Command {
	help := map[string][2]string{
		"undeploy": {"Remove a service from its node: DNS names, routes, certificates, containers", "  mcp undeploy hello\n  mcp undeploy old-thing --node orion"},
		"stop":     {"Stop a service: remove its DNS names and routes, stop its containers", "  mcp stop hello"},
		"start":    {"Start a stopped service: containers, health, routes, DNS", "  mcp start hello"},
		"restart":  {"Restart a service's containers in place and wait for health", "  mcp restart hello"},
	}[verb]
	return &cobra.Command{
		Use:     verb + " SERVICE",
		Short:   help[0],
		Example: help[1],
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.nodeOf(args[0])
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
			final, err := a.run(ctx, c, verb, args[0], nil, out)
			return a.result(out, verb, args[0], n.Name, final, err)
		},
	}
}

// run runs one operation on an agent.
func (a *app) run(ctx context.Context, c *client.Client, verb, service string, sp *spec.Service, out io.Writer) (*mcpv1.OperationEvent, error) {
	p := a.progress(out)
	switch verb {
	case "deploy", reconcile.Redeploy:
		return c.Deploy(ctx, specpb.ToPB(sp), p)
	case "undeploy":
		return c.Undeploy(ctx, service, p)
	case "stop":
		return c.Stop(ctx, service, p)
	case "start":
		return c.Start(ctx, service, p)
	case "restart":
		return c.Restart(ctx, service, p)
	}
	return nil, fmt.Errorf("unknown operation %s", verb)
}

func (a *app) syncCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Make the nodes run what the services directory defines",
		Long: `sync compares every definition in the services directory with what the
nodes' agents run and then deploys new services, redeploys changed ones
(their definition's hash differs from the deployed one), starts active
services found stopped, and undeploys inactive and absent ones. With
--dry-run it only prints the plan and exits 0 when there is nothing to do,
2 when there is, 1 on an error (an invalid definition, an agent that does
not answer).`,
		Example: `  mcp sync --dry-run
  mcp sync
  mcp sync --dry-run --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			defs, err := spec.LoadDir(cfg.Services.Dir)
			if err != nil {
				return err
			}
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			bySvc := map[string]*spec.Service{}
			var desired []reconcile.Desired
			for _, d := range defs {
				n, err := cfg.NodeFor(d)
				if err != nil {
					return err
				}
				bySvc[d.Name] = d
				desired = append(desired, reconcile.Desired{Service: d.Name, Node: n.Name, Hash: d.Hash(), Active: d.Active})
			}
			clients := map[string]*client.Client{}
			defer func() {
				for _, c := range clients {
					_ = c.Close()
				}
			}()
			var running []reconcile.Running
			for _, n := range cfg.Nodes {
				c, err := a.dial(ctx, n)
				if err != nil {
					return err
				}
				clients[n.Name] = c
				svcs, err := c.ListServices(ctx)
				if err != nil {
					return fmt.Errorf("node %s: %w", n.Name, err)
				}
				for _, s := range svcs {
					if s.GetRevision() == 0 {
						continue
					}
					running = append(running, reconcile.Running{Service: s.GetName(), Node: n.Name, Hash: s.GetSpecHash(), Stopped: s.GetDesired() == "stopped"})
				}
			}
			plan := reconcile.Plan(desired, running)
			out := cmd.OutOrStdout()
			if dryRun {
				if err := cli.Print(out, a.asJSON, plan, func(w *tabwriter.Writer) {
					if len(plan) == 0 {
						fmt.Fprintln(w, "nothing to do: the nodes run what the definitions say")
						return
					}
					fmt.Fprintln(w, "ACTION\tSERVICE\tNODE\tWHY")
					for _, p := range plan {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.Action, p.Service, p.Node, p.Reason)
					}
				}); err != nil {
					return err
				}
				if len(plan) > 0 {
					return &exitError{code: 2}
				}
				return nil
			}
			var failed []string
			for _, p := range plan {
				if !a.asJSON {
					fmt.Fprintf(out, "%s\n", p)
				}
				final, err := a.run(ctx, clients[p.Node], p.Action, p.Service, bySvc[p.Service], out)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "mcp: %v\n", err)
					failed = append(failed, p.Action+" "+p.Service)
					continue
				}
				if !a.asJSON {
					fmt.Fprintf(out, "%s %s on %s: %s\n", p.Action, p.Service, p.Node, final.GetResult())
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("sync: %d of %d actions failed: %s", len(failed), len(plan), strings.Join(failed, ", "))
			}
			if len(plan) == 0 && !a.asJSON {
				fmt.Fprintln(out, "nothing to do: the nodes run what the definitions say")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan; exit 0 (no changes), 2 (changes) or 1 (error)")
	return cmd
}
