// Package server builds the MCP agent from its configuration on
// mcdsl/service: the registry, the Podman runtime, the clients of
// Metacrypt, mc-proxy and MCNS behind the deploy engine's seams, the
// monitor, the gRPC API behind MCIAS and the per-RPC caller map, and the
// agent's background task (resume interrupted operations, boot sequence,
// monitor loop).
package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/service"
	mcnsclient "git.metacircular.net/metacircular/mcns/client"
	"git.metacircular.net/metacircular/mcp/internal/agent"
	"git.metacircular.net/metacircular/mcp/internal/alert"
	"git.metacircular.net/metacircular/mcp/internal/boot"
	"git.metacircular.net/metacircular/mcp/internal/certs"
	"git.metacircular.net/metacircular/mcp/internal/deploy"
	"git.metacircular.net/metacircular/mcp/internal/dns"
	"git.metacircular.net/metacircular/mcp/internal/grpcapi"
	"git.metacircular.net/metacircular/mcp/internal/monitor"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/restart"
	"git.metacircular.net/metacircular/mcp/internal/routes"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/runtime/podman"
	"git.metacircular.net/metacircular/mcp/internal/spec"
	mcproxyclient "git.metacircular.net/metacircular/mcproxy/client"
	metacryptclient "git.metacircular.net/metacircular/metacrypt/client"
)

// Version is the binary's version, set by cmd/mcp-agent.
var Version = "dev"

// Parts are the agent's pieces, built from a configuration; tests swap
// the runtime.
type Parts struct {
	Registry *registry.Store
	Runtime  runtime.Runtime
	Engine   *deploy.Engine
	Monitor  *monitor.Monitor
	Agent    *agent.Agent
	Boot     *boot.Sequence
	closers  []func() error
}

// Close closes the clients and the registry.
func (p *Parts) Close() error {
	var first error
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Assemble builds the agent's parts. Operations run in base (the agent's
// lifetime). rt, when not nil, replaces the Podman runtime.
func Assemble(base context.Context, cfg *Config, logger *slog.Logger, rt runtime.Runtime) (*Parts, error) {
	p := &Parts{}
	st, err := registry.Open(base, cfg.Database.Path, logger)
	if err != nil {
		return nil, err
	}
	p.Registry = st
	p.closers = append(p.closers, st.Close)
	fail := func(err error) (*Parts, error) {
		_ = p.Close()
		return nil, err
	}
	token, err := cfg.Token()
	if err != nil {
		return fail(err)
	}
	if rt == nil {
		rt = &podman.Podman{Bin: cfg.Runtime.Podman, Args: cfg.Runtime.Args, Env: cfg.Runtime.Env,
			AuthFile: cfg.Runtime.AuthFile, LogDriver: cfg.Runtime.LogDriver}
	}
	p.Runtime = rt
	proxy, err := mcproxyclient.New(cfg.MCProxy.Socket)
	if err != nil {
		return fail(err)
	}
	p.closers = append(p.closers, proxy.Close)
	var certProvider deploy.Certs
	if cfg.Metacrypt.Address != "" {
		mc, err := metacryptclient.New(cfg.Metacrypt.Address, cfg.Agent.CACert, token)
		if err != nil {
			return fail(err)
		}
		p.closers = append(p.closers, mc.Close)
		certProvider = &certs.Provider{CA: mc, Mount: cfg.Metacrypt.Mount, IssuerName: cfg.Metacrypt.Issuer,
			Dir: cfg.Metacrypt.CertsDir, TTL: cfg.Metacrypt.TTL.Duration, RenewBefore: cfg.Metacrypt.RenewBefore.Duration}
	}
	var names deploy.DNS
	if cfg.MCNS.Address != "" {
		nc, err := mcnsclient.New(cfg.MCNS.Address, cfg.Agent.CACert, token)
		if err != nil {
			return fail(err)
		}
		p.closers = append(p.closers, nc.Close)
		names = &dns.MCNS{Client: nc, Zone: cfg.MCNS.Zone}
	}
	lo, hi, _ := cfg.Ports()
	listeners := map[int]string{}
	for _, l := range cfg.MCProxy.Listeners {
		listeners[l.Port] = l.Name
	}
	p.Engine = deploy.New(base, deploy.Deps{
		Config: deploy.Config{
			Node: cfg.Agent.Node, Domain: cfg.Agent.Domain, Address: cfg.Agent.Address, PublishIP: cfg.Agent.PublishAddress,
			PortLow: lo, PortHigh: hi, Listeners: listeners, DefaultListener: cfg.MCProxy.DefaultListener,
			DataRoot: cfg.Agent.DataRoot, HealthTimeout: cfg.Agent.HealthTimeout.Duration, HealthInterval: cfg.Agent.HealthInterval.Duration,
			Drain: cfg.Agent.Drain.Duration, StopTimeout: cfg.Agent.StopTimeout.Duration,
			Auth: func(img spec.Image) (*runtime.Auth, error) {
				if !slices.Contains(cfg.Registry.Hosts, img.Registry) {
					return nil, nil
				}
				tok, err := cfg.Token()
				if err != nil {
					return nil, err
				}
				return &runtime.Auth{Registry: img.Registry, Username: cfg.Registry.Username, Password: tok, CertDir: cfg.Registry.CertDir}, nil
			},
		},
		Registry: st, Runtime: rt, Certs: certProvider, Routes: &routes.Proxy{Client: proxy}, DNS: names, Logger: logger,
	})
	sink := &alert.Sink{Node: cfg.Agent.Node, Registry: st, Logger: logger, Webhook: cfg.Monitor.Webhook, Command: cfg.Monitor.Command}
	p.Monitor = &monitor.Monitor{
		Node: cfg.Agent.Node, Address: cfg.Agent.Address, Engine: p.Engine, Registry: st, Runtime: rt,
		Routes: &routes.Proxy{Client: proxy}, DNS: names, Certs: certProvider, Alerts: sink,
		Restarts: restart.NewTracker(cfg.Monitor.FlapRestarts, cfg.Monitor.FlapWindow.Duration), Logger: logger,
		Interval: cfg.Monitor.Interval.Duration, OrphanGrace: cfg.Monitor.OrphanGrace.Duration,
	}
	p.Agent = agent.New(agent.Agent{
		Config:   agent.Config{Node: cfg.Agent.Node, Domain: cfg.Agent.Domain, Address: cfg.Agent.Address, DataRoot: cfg.Agent.DataRoot, Version: Version},
		Registry: st, Runtime: rt, Engine: p.Engine, Monitor: p.Monitor, Logger: logger,
		Snapshotter: agent.GRPCSnapshotter{CAFile: cfg.Agent.CACert},
	})
	p.Boot = &boot.Sequence{Stages: cfg.Stages(), Node: bootNode{p.Agent}, Logger: logger,
		Alert: func(ctx context.Context, service, msg string) { sink.Send(ctx, service, alert.Boot, msg) }}
	return p, nil
}

// bootNode adapts the agent to boot.Node.
type bootNode struct{ a *agent.Agent }

func (b bootNode) Up(ctx context.Context, service string) error { return b.a.Up(ctx, service) }
func (b bootNode) Services(ctx context.Context) ([]registry.Service, error) {
	return b.a.ServicesForBoot(ctx)
}
func (b bootNode) FirstPort(ctx context.Context, service string) (int, error) {
	return b.a.FirstPort(ctx, service)
}

// Run is the agent's background work: finish interrupted operations, run
// the boot sequence, then watch.
func (p *Parts) Run(ctx context.Context, logger *slog.Logger) error {
	p.Agent.SetBoot("resuming")
	if err := p.Engine.Resume(ctx); err != nil {
		return fmt.Errorf("resume interrupted operations: %w", err)
	}
	p.Agent.SetBoot("running")
	if err := p.Boot.Run(ctx); err != nil && ctx.Err() == nil {
		logger.Error("boot sequence", "error", err)
	}
	p.Agent.SetBoot("done")
	p.Monitor.Pass(ctx)
	return p.Monitor.Run(ctx)
}

// Build constructs the agent on rt (mcdsl/service): the parts, the gRPC
// API on server.grpc_addr authenticated by MCIAS, and the background task.
func Build(ctx context.Context, cfg *Config, rt *service.Runtime) error {
	return BuildWith(ctx, cfg, rt, nil)
}

// BuildWith is Build with another container runtime (tests).
func BuildWith(_ context.Context, cfg *Config, rt *service.Runtime, cr runtime.Runtime) error {
	base, cancel := context.WithCancel(context.Background())
	p, err := Assemble(base, cfg, rt.Logger, cr)
	if err != nil {
		cancel()
		return err
	}
	rt.OnClose(p.Close)
	rt.OnClose(func() error {
		// Stop operations first (they record where they stopped), then
		// close the registry.
		cancel()
		p.Engine.Wait()
		return nil
	})
	validator, err := auth.New(cfg.MCIAS, auth.Options{})
	if err != nil {
		return err
	}
	check := func(ctx context.Context) error { return p.Registry.DB().PingContext(ctx) }
	rt.SetHealth(check)
	gs, err := grpcserver.New(rt.GRPCOptions(cfg.Server, grpcserver.Options{
		Service: ServiceName, Validator: validator, Health: check, Maps: grpcapi.MethodMaps(),
	}))
	if err != nil {
		return err
	}
	if err := grpcapi.Register(gs, p.Agent, grpcapi.Policy{SystemAccounts: cfg.Auth.SystemAccounts, Allowed: grpcapi.Allowed}); err != nil {
		return err
	}
	rt.GRPC(gs)
	rt.Task("agent", func(ctx context.Context) error { return p.Run(ctx, rt.Logger) })
	return nil
}

// Status prints the registry's services (the status verb).
func Status(ctx context.Context, cfg *Config, out io.Writer, asJSON bool) error {
	st, err := registry.Open(ctx, cfg.Database.Path, nil)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	svcs, err := st.Services(ctx)
	if err != nil {
		return err
	}
	type row struct {
		Name     string `json:"name"`
		Desired  string `json:"desired"`
		Revision int64  `json:"revision"`
		LastOp   string `json:"last_operation"`
	}
	rows := make([]row, 0, len(svcs))
	for _, s := range svcs {
		r := row{Name: s.Name, Desired: s.Desired, Revision: s.Revision}
		if op, err := st.LastOperation(ctx, s.Name); err == nil {
			r.LastOp = op.Kind + " " + op.State
		}
		rows = append(rows, r)
	}
	return cli.Print(out, asJSON, map[string]any{"node": cfg.Agent.Node, "services": rows}, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "node %s (%s)\n", cfg.Agent.Node, cfg.Agent.Address)
		fmt.Fprintln(w, "SERVICE\tDESIRED\tREVISION\tLAST OPERATION")
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", r.Name, r.Desired, r.Revision, r.LastOp)
		}
	})
}
