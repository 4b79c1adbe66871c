package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"golang.org/x/sync/errgroup"

	"git.metacircular.net/metacircular/mcdsl/httpserver"
	"git.metacircular.net/metacircular/mcproxy/internal/admin"
	"git.metacircular.net/metacircular/mcproxy/internal/firewall"
	"git.metacircular.net/metacircular/mcproxy/internal/proxy"
	"git.metacircular.net/metacircular/mcproxy/internal/store"
)

// Listeners lets tests hand in pre-bound sockets; nil (or missing) ones
// are bound from the config. Proxy is keyed by listener name.
type Listeners struct {
	Proxy   map[string]net.Listener
	Admin   net.Listener
	Metrics net.Listener
}

// Run serves mc-proxy until ctx is cancelled: it opens the database, seeds
// it from the TOML if it has never held state, logs one warning listing
// every TOML/database difference, and serves the data plane from the
// database's routes and rules, the admin API on the Unix socket and
// metrics. A cancellation while starting is a clean stop.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger, ls Listeners) error {
	err := run(ctx, cfg, logger, ls)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func run(ctx context.Context, cfg *Config, logger *slog.Logger, ls Listeners) (err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Sockets handed in or bound here are closed on every early return;
	// once serving, their servers own them.
	bound := []net.Listener{}
	defer func() {
		if err != nil {
			for _, l := range bound {
				_ = l.Close()
			}
		}
	}()

	st, err := store.Open(ctx, cfg.Database.Path, logger)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	tomlRoutes, tomlRules := cfg.TOMLRoutes(), cfg.Firewall.Rules()
	seeded, err := st.Seed(ctx, tomlRoutes, tomlRules)
	if err != nil {
		return err
	}
	if seeded {
		logger.Info("seeded the empty database from the configuration", "routes", len(tomlRoutes), "firewall_rules", len(tomlRules))
	}
	diff, err := st.Diff(ctx, tomlRoutes, tomlRules)
	if err != nil {
		return err
	}
	if len(diff) > 0 {
		// One event, every difference: the database is what is served.
		logger.Warn("mc-proxy.toml and the database differ; serving the database (mcproxyctl status lists the differences)",
			"differences", len(diff), "detail", strings.Join(diff, "; "))
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

	opts := proxy.Options{
		HelloTimeout:       cfg.Timeouts.Hello.Duration,
		ProxyHeaderTimeout: cfg.Timeouts.ProxyHeader.Duration,
		IdleTimeout:        cfg.Timeouts.Idle.Duration,
		ShutdownTimeout:    cfg.Server.ShutdownTimeout.Duration,
		Firewall: firewall.Config{
			Rules: rules, GeoIPPath: cfg.Firewall.GeoIPDB,
			RatePerSecond: cfg.Firewall.RatePerSecond, Burst: cfg.Firewall.Burst,
		},
		Logger: logger,
	}
	for _, l := range cfg.Listeners {
		pl := proxy.Listener{Name: l.Name, Addr: l.Addr, AcceptProxyProtocol: l.ProxyProtocol}
		for _, p := range l.TrustedProxies {
			prefix, err := parsePrefix(p)
			if err != nil {
				return fmt.Errorf("listener %s: %w", l.Name, err)
			}
			pl.TrustedProxies = append(pl.TrustedProxies, prefix)
		}
		opts.Listeners = append(opts.Listeners, pl)
	}
	px, err := proxy.New(opts, table)
	if err != nil {
		return err
	}

	svc := admin.New(admin.Options{
		Store: st, Dataplane: px, Stats: statsOf(px), Listeners: cfg.ListenerNames(),
		TOMLRoutes: tomlRoutes, TOMLRules: tomlRules, Logger: logger,
	})
	gs := admin.NewGRPC(svc, logger)
	var ms *httpserver.Server
	if cfg.Server.MetricsAddr != "" || ls.Metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", px.MetricsHandler())
		// Scrapes are not logged: one line every few seconds is noise.
		if ms, err = httpserver.New(httpserver.Options{Addr: cfg.Server.MetricsAddr, Plain: true}, mux); err != nil {
			return err
		}
	}

	// Bind everything before serving anything, so a taken port cannot
	// leave the rest running behind a returned error.
	lns := make(map[string]net.Listener, len(cfg.Listeners))
	var lc net.ListenConfig
	for _, l := range cfg.Listeners {
		ln := ls.Proxy[l.Name]
		if ln == nil {
			if ln, err = lc.Listen(ctx, "tcp", l.Addr); err != nil {
				return fmt.Errorf("listener %s: %w", l.Name, err)
			}
		}
		bound = append(bound, ln)
		lns[l.Name] = ln
	}
	adminLn := ls.Admin
	if adminLn == nil {
		if adminLn, err = admin.Listen(cfg.Server.AdminSocket); err != nil {
			return err
		}
	}
	bound = append(bound, adminLn)
	metricsLn := ls.Metrics
	if ms != nil && metricsLn == nil {
		if metricsLn, err = lc.Listen(ctx, "tcp", cfg.Server.MetricsAddr); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		bound = append(bound, metricsLn)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return px.Serve(gctx, lns) })
	g.Go(func() error {
		errc := make(chan error, 1)
		go func() { errc <- gs.Serve(adminLn) }()
		logger.Info("admin API listening", "socket", adminLn.Addr().String())
		select {
		case err := <-errc:
			return fmt.Errorf("admin API: %w", err)
		case <-gctx.Done():
		}
		// Admin calls are short; GracefulStop waits for them.
		gs.GracefulStop()
		if err := <-errc; err != nil {
			return fmt.Errorf("admin API: %w", err)
		}
		return nil
	})
	if ms != nil {
		g.Go(func() error { return ms.Serve(gctx, metricsLn) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("mc-proxy: %w", err)
	}
	return nil
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
