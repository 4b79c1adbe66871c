package server

import (
	"context"
	"errors"
	"time"

	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/service"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// pruneInterval is how often expired tokens, SSO codes and old keys are
// removed.
const pruneInterval = time.Hour

// Build constructs MCIAS on rt, binding nothing: the store, the identity
// service, the gRPC API on server.grpc_addr (when set), its REST face
// generated from the proto together with the hand-written HTTP (JWKS, SSO
// authorize, WebAuthn ceremonies, web UI) on server.listen_addr, the
// opt-in profiling listener (debug.pprof_addr) and the hourly prune. Tests
// hand in pre-bound listeners "http", "grpc" and "pprof".
func Build(ctx context.Context, cfg *Config, rt *service.Runtime) error {
	return build(ctx, cfg, rt, hooks{})
}

// hooks replace parts of the identity service in tests (export_test.go).
type hooks struct {
	// now replaces the clock (tests move time).
	now func() time.Time
	// hash runs inside every Argon2 slot (tests hold a slot with it).
	hash func()
}

// build is Build with the test hooks that are set.
func build(ctx context.Context, cfg *Config, rt *service.Runtime, th hooks) error {
	icfg, err := cfg.Identity()
	if err != nil {
		return err
	}
	if th.now != nil {
		icfg.Now = th.now
	}
	icfg.HashHook = th.hash
	st, err := store.Open(ctx, cfg.Database.Path, rt.Logger)
	if err != nil {
		return err
	}
	rt.OnClose(st.Close)
	svc, err := identity.New(ctx, st, icfg, rt.Logger)
	if err != nil {
		return err
	}
	check := func(ctx context.Context) error { return st.DB().PingContext(ctx) }
	rt.SetHealth(check)
	gs, err := grpcserver.New(rt.GRPCOptions(cfg.Server, grpcserver.Options{
		Service: ServiceName, Validator: svc, Health: check, Maps: methodMaps(),
	}))
	if err != nil {
		return err
	}
	register(gs, cfg, svc, st)
	rest, err := restAPI(gs, rt.Logger)
	if err != nil {
		return err
	}
	validate := newValidateREST(mciasv1.NewAuthServiceClient(gs.Local()), rest, rt.Logger)
	h, err := httpHandler(cfg, svc, rest, validate, rt.Logger)
	if err != nil {
		return err
	}
	if err := rt.HTTP(cfg.Server, h); err != nil {
		return err
	}
	rt.GRPC(gs)
	if err := addPprof(rt, cfg.Debug); err != nil {
		return err
	}
	rt.Task("prune", func(ctx context.Context) error {
		t := time.NewTicker(pruneInterval)
		defer t.Stop()
		for {
			if err := svc.Prune(ctx); err != nil && !errors.Is(err, context.Canceled) {
				rt.Logger.Warn("prune failed", "error", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return nil
}
