package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"git.metacircular.net/metacircular/mcdsl/httpserver"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// pruneInterval is how often expired tokens and keys are removed.
const pruneInterval = time.Hour

// Listeners lets tests hand in pre-bound sockets; nil fields are bound from
// the config.
type Listeners struct {
	HTTP, GRPC net.Listener
}

// Run serves MCIAS until ctx is cancelled. A cancellation that arrives while it is
// still starting is a clean stop, not an error.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger, ls Listeners) error {
	err := run(ctx, cfg, logger, ls)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func run(ctx context.Context, cfg *Config, logger *slog.Logger, ls Listeners) error {
	icfg, err := cfg.Identity()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Database.Path, logger)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	svc, err := identity.New(ctx, st, icfg, logger)
	if err != nil {
		return err
	}
	check := func(ctx context.Context) error { return st.DB().PingContext(ctx) }

	g, gctx := errgroup.WithContext(ctx)
	if cfg.Server.ListenAddr != "" || ls.HTTP != nil {
		hs, err := httpserver.New(httpserver.FromConfig(cfg.Server, logger), NewREST(cfg, svc, check, logger).Handler())
		if err != nil {
			return err
		}
		g.Go(func() error {
			if ls.HTTP != nil {
				return hs.Serve(gctx, ls.HTTP)
			}
			return hs.ListenAndServe(gctx)
		})
	}
	if cfg.Server.GRPCAddr != "" || ls.GRPC != nil {
		gs, err := NewGRPC(cfg, svc, st, check, logger)
		if err != nil {
			return err
		}
		g.Go(func() error {
			if ls.GRPC != nil {
				return gs.Serve(gctx, ls.GRPC)
			}
			return gs.ListenAndServe(gctx)
		})
	}
	g.Go(func() error {
		t := time.NewTicker(pruneInterval)
		defer t.Stop()
		for {
			if err := svc.Prune(gctx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Warn("prune failed", "error", err)
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("mcias: %w", err)
	}
	return nil
}
