package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcproxy/internal/admin"
	"git.metacircular.net/metacircular/mcproxy/internal/firewall"
	"git.metacircular.net/metacircular/mcproxy/internal/proxy"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
	"git.metacircular.net/metacircular/mcproxy/internal/store"
)

// Component names on the service runtime: tests hand pre-bound sockets in
// under these names (service.Options.Listeners).
const (
	// AdminComponent is the admin gRPC API on server.admin_socket.
	AdminComponent = "admin"
	// MetricsComponent is the plain-HTTP /metrics on server.metrics_addr.
	MetricsComponent = "metrics"
)

// ListenerComponent is the component name of the proxy listener called
// name in mc-proxy.toml: "listener:https".
func ListenerComponent(name string) string { return "listener:" + name }

// Build constructs mc-proxy on rt without binding anything: it opens the
// database, seeds it from the TOML if it has never held state, logs one
// warning listing every TOML/database difference, and builds the data
// plane from the database's routes and rules — one component per
// [[listeners]] (ListenerComponent) — the admin API on the Unix socket
// (AdminComponent) and, with server.metrics_addr, the metrics listener
// (MetricsComponent), which serves the data plane's mcproxy_* series
// beside the Go runtime, process and admin RPC series.
func Build(ctx context.Context, cfg *Config, rt *service.Runtime) error {
	st, err := store.Open(ctx, cfg.Database.Path, rt.Logger)
	if err != nil {
		return err
	}
	rt.OnClose(st.Close)
	tomlRoutes, tomlRules := cfg.TOMLRoutes(), cfg.Firewall.Rules()
	if _, err := seed(ctx, st, cfg, rt.Logger); err != nil {
		return err
	}
	routes, err := st.Routes(ctx)
	if err != nil {
		return err
	}
	table, err := admin.Table(routes)
	if err != nil {
		return err
	}
	rules, err := st.Rules(ctx)
	if err != nil {
		return err
	}
	px, err := newProxy(cfg, table, rules, rt)
	if err != nil {
		return err
	}
	rt.OnClose(px.Close)
	for _, l := range cfg.Listeners {
		addListener(rt, px, l.Name)
	}

	check := func(ctx context.Context) error { return st.DB().PingContext(ctx) }
	rt.SetHealth(check)
	svc := admin.New(admin.Options{
		Store: st, Dataplane: px, Stats: statsOf(px), Listeners: cfg.ListenerNames(),
		TOMLRoutes: tomlRoutes, TOMLRules: tomlRules, Logger: rt.Logger,
	})
	gs, err := grpcserver.New(grpcserver.Options{
		Socket: cfg.Server.AdminSocket, Service: ServiceName, Maps: admin.MethodMaps(),
		Health: check, Logger: rt.Logger, Metrics: rt.Metrics,
	})
	if err != nil {
		return err
	}
	admin.Register(gs, svc)
	rt.GRPCAs(AdminComponent, gs)

	// mc-proxy has no HTTP API of its own: from its [server] section the
	// runtime adds only the metrics listener (MetricsComponent).
	return rt.HTTP(config.Server{MetricsAddr: cfg.Server.MetricsAddr, ShutdownTimeout: cfg.Server.ShutdownTimeout}, nil)
}

// seed stores the TOML's routes and rules in a database that has never
// held state, and logs what it did and, in one warning, every difference
// between the TOML and the database. It returns the differences.
func seed(ctx context.Context, st *store.Store, cfg *Config, logger *slog.Logger) ([]string, error) {
	tomlRoutes, tomlRules := cfg.TOMLRoutes(), cfg.Firewall.Rules()
	seeded, err := st.Seed(ctx, tomlRoutes, tomlRules)
	if err != nil {
		return nil, err
	}
	if seeded {
		logger.Info("seeded the empty database from the configuration", "routes", len(tomlRoutes), "firewall_rules", len(tomlRules))
	}
	diff, err := st.Diff(ctx, tomlRoutes, tomlRules)
	if err != nil {
		return nil, err
	}
	if len(diff) > 0 {
		// One event, every difference: the database is what is served.
		logger.Warn("mc-proxy.toml and the database differ; serving the database (mcproxyctl status lists the differences)",
			"differences", len(diff), "detail", strings.Join(diff, "; "))
	}
	return diff, nil
}

// newProxy builds the data plane, reporting to rt's metrics registry.
func newProxy(cfg *Config, table *route.Table, rules []route.Rule, rt *service.Runtime) (*proxy.Server, error) {
	opts := proxy.Options{
		HelloTimeout:       cfg.Timeouts.Hello.Duration,
		ProxyHeaderTimeout: cfg.Timeouts.ProxyHeader.Duration,
		IdleTimeout:        cfg.Timeouts.Idle.Duration,
		ShutdownTimeout:    cfg.Server.ShutdownTimeout.Duration,
		Firewall: firewall.Config{
			Rules: rules, GeoIPPath: cfg.Firewall.GeoIPDB,
			RatePerSecond: cfg.Firewall.RatePerSecond, Burst: cfg.Firewall.Burst,
			RateIPv4Prefix: cfg.Firewall.RateIPv4Prefix, RateIPv6Prefix: cfg.Firewall.RateIPv6Prefix,
		},
		Metrics: rt.Metrics.Registerer(),
		Logger:  rt.Logger,
	}
	for _, l := range cfg.Listeners {
		pl := proxy.Listener{Name: l.Name, Addr: l.Addr, AcceptProxyProtocol: l.ProxyProtocol}
		for _, p := range l.TrustedProxies {
			prefix, err := parsePrefix(p)
			if err != nil {
				return nil, fmt.Errorf("listener %s: %w", l.Name, err)
			}
			pl.TrustedProxies = append(pl.TrustedProxies, prefix)
		}
		opts.Listeners = append(opts.Listeners, pl)
	}
	return proxy.New(opts, table)
}

// addListener adds the proxy listener name as a component: bound from its
// addr (or handed in under ListenerComponent(name)), then served until
// the service stops, with its own drain.
func addListener(rt *service.Runtime, px *proxy.Server, name string) {
	component := ListenerComponent(name)
	var ln net.Listener
	rt.Add(component, func(ctx context.Context) (string, error) {
		if pre, ok := rt.Listener(component); ok {
			ln = pre
		} else {
			l, err := px.Listen(ctx, name)
			if err != nil {
				return "", err
			}
			ln = l
		}
		return ln.Addr().String(), nil
	}, func(ctx context.Context) error {
		return px.ServeListener(ctx, name, ln)
	}, func() {
		if ln != nil {
			_ = ln.Close()
		}
	})
}

// statsOf adapts the proxy's status to the admin service's view.
func statsOf(px *proxy.Server) func() admin.Stats {
	return func() admin.Stats {
		s := px.Status()
		out := admin.Stats{OpenConnections: s.OpenConnections}
		for _, l := range s.Listeners {
			out.Listeners = append(out.Listeners, admin.ListenerStatus{Name: l.Name, Addr: l.Addr, Routes: l.Routes})
		}
		return out
	}
}
