package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/sync/errgroup"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/httpserver"
	"git.metacircular.net/metacircular/mcns/internal/dnsserver"
	"git.metacircular.net/metacircular/mcns/internal/records"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// Listeners lets tests hand in pre-bound sockets; nil fields are bound from
// the config. DNS uses the pre-bound sockets only when both are set.
type Listeners struct {
	HTTP, GRPC net.Listener
	DNSUDP     net.PacketConn
	DNSTCP     net.Listener
}

// SeedZones creates the configured [[zones]] that do not exist yet and
// reports each one it created.
func SeedZones(ctx context.Context, cfg *Config, svc *records.Service) ([]store.Zone, error) {
	var created []store.Zone
	for _, seed := range cfg.Zones {
		z, ok, err := svc.EnsureZone(ctx, seed.Spec())
		if err != nil {
			return created, fmt.Errorf("seed zone %s: %w", seed.Name, err)
		}
		if ok {
			created = append(created, z)
		}
	}
	return created, nil
}

// Run serves MCNS — DNS, REST and gRPC — until ctx is cancelled. It seeds
// the configured zones first. A cancellation that arrives while it is
// still starting is a clean stop, not an error.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger, ls Listeners) error {
	err := run(ctx, cfg, logger, ls)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func run(ctx context.Context, cfg *Config, logger *slog.Logger, ls Listeners) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	st, err := store.Open(ctx, cfg.Database.Path, logger)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	svc := records.New(st, cfg.MCNS.AgentAccounts, logger)
	if _, err := SeedZones(ctx, cfg, svc); err != nil {
		return err
	}
	validator, err := auth.New(cfg.MCIAS, auth.Options{})
	if err != nil {
		return err
	}
	dns, err := dnsserver.New(st, cfg.DNS, logger)
	if err != nil {
		return err
	}
	check := func(ctx context.Context) error { return st.DB().PingContext(ctx) }
	// Everything is built before anything serves, so a bad certificate
	// cannot leave a listener running behind a returned error.
	var hs *httpserver.Server
	if cfg.Server.ListenAddr != "" || ls.HTTP != nil {
		if hs, err = httpserver.New(httpserver.FromConfig(cfg.Server, logger), NewREST(svc, validator, check, logger).Handler()); err != nil {
			return err
		}
	}
	var gs *grpcserver.Server
	if cfg.Server.GRPCAddr != "" || ls.GRPC != nil {
		if gs, err = NewGRPC(cfg, svc, validator, st, check, logger); err != nil {
			return err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if ls.DNSUDP != nil && ls.DNSTCP != nil {
			return dns.Serve(gctx, ls.DNSUDP, ls.DNSTCP)
		}
		return dns.ListenAndServe(gctx)
	})
	if hs != nil {
		g.Go(func() error {
			if ls.HTTP != nil {
				return hs.Serve(gctx, ls.HTTP)
			}
			return hs.ListenAndServe(gctx)
		})
	}
	if gs != nil {
		g.Go(func() error {
			if ls.GRPC != nil {
				return gs.Serve(gctx, ls.GRPC)
			}
			return gs.ListenAndServe(gctx)
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("mcns: %w", err)
	}
	return nil
}
