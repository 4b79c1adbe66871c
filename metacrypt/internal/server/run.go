package server

import (
	"context"
	"net"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/httpserver"
	"git.metacircular.net/metacircular/mcdsl/service"
	acmehttp "git.metacircular.net/metacircular/metacrypt/internal/acme/httpapi"
	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/ca"
	"git.metacircular.net/metacircular/metacrypt/internal/mount"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// Builder returns the build function of service.Run for a binary of the
// given version.
func Builder(version string) func(ctx context.Context, cfg *Config, rt *service.Runtime) error {
	return func(ctx context.Context, cfg *Config, rt *service.Runtime) error {
		return Build(ctx, cfg, rt, version)
	}
}

// Build constructs Metacrypt on rt, sealed: the store, the barrier, the
// policy, the mount table with the CA engine, the gRPC API on
// server.grpc_addr and, on server.listen_addr, its REST face with the
// public CA endpoints and the ACME server; with pki.listen_addr, those
// public endpoints alone over plain HTTP too; the periodic engine work
// (CRL refresh) and the ACME validation queue. Tests hand in pre-bound
// listeners "http", "grpc" and "pki".
func Build(ctx context.Context, cfg *Config, rt *service.Runtime, version string) error {
	st, err := store.Open(ctx, cfg.Database.Path, rt.Logger)
	if err != nil {
		return err
	}
	rt.OnClose(st.Close)
	b := barrier.New(st, barrier.Options{Params: cfg.Seal.Params(), Logger: rt.Logger})
	// Closers run in reverse order: the keys are zeroized before the
	// store closes.
	rt.OnClose(func() error { b.Seal(); return nil })
	pol := policy.New(b.View(barrier.SysOwner))
	reg := engine.NewRegistry()
	mounts := mount.New(st, b, reg)
	caSvc := ca.New(ca.Deps{
		Mounts: mounts, Store: st, Authz: pol, Sealed: b.Sealed, Logger: rt.Logger,
		Config: ca.Config{ExternalURL: cfg.PKI.ExternalURL, CRLLifetime: cfg.PKI.CRLLifetime.Duration, OCSPLifetime: cfg.PKI.OCSPLifetime.Duration},
	})
	reg.Register(caSvc)

	validator, err := auth.New(cfg.MCIAS, auth.Options{})
	if err != nil {
		return err
	}
	// Health is the database's: a sealed Metacrypt is healthy (it answers
	// status, unseal and the public CA endpoints) and says it is sealed
	// in its status.
	check := func(ctx context.Context) error { return st.DB().PingContext(ctx) }
	rt.SetHealth(check)
	gs, err := grpcserver.New(rt.GRPCOptions(cfg.Server, grpcserver.Options{
		Service: ServiceName, Validator: validator, Health: check, Maps: methodMaps(), Sealed: b.Sealed,
	}))
	if err != nil {
		return err
	}
	acmeSvc := newACME(cfg.ACME, mounts, caSvc, b, rt.Logger)
	a := &app{barrier: b, mounts: mounts, policy: pol, ca: caSvc, acme: acmeSvc, version: version, logger: rt.Logger}
	register(gs, a, st)
	rest, err := restAPI(gs, rt.Logger)
	if err != nil {
		return err
	}
	public := &pkiHTTP{ca: caSvc, logger: rt.Logger}
	// The ACME server is on the HTTPS listener only (RFC 8555 §6.1).
	acmeHTTP := acmehttp.New(acmeSvc, rt.Logger)
	if err := rt.HTTP(cfg.Server, public.handler(rest, acmeHTTP.Routes)); err != nil {
		return err
	}
	rt.GRPC(gs)
	if err := publicListener(cfg, rt, public); err != nil {
		return err
	}
	rt.Task("engines", func(ctx context.Context) error {
		return mounts.Run(ctx, cfg.PKI.RefreshInterval.Duration, rt.Logger)
	})
	rt.Task("acme-validation", acmeSvc.RunQueue)
	return nil
}

// publicListener adds the plain-HTTP listener of pki.listen_addr
// (component "pki"), serving only the public CA endpoints.
func publicListener(cfg *Config, rt *service.Runtime, public *pkiHTTP) error {
	pre, havePre := rt.Listener("pki")
	if cfg.PKI.ListenAddr == "" && !havePre {
		return nil
	}
	srv, err := httpserver.New(httpserver.Options{
		Addr: cfg.PKI.ListenAddr, Plain: true, ShutdownTimeout: cfg.Server.ShutdownTimeout.Duration, Logger: rt.Logger,
	}, rt.Handler(public.handler(nil), false))
	if err != nil {
		return err
	}
	var ln net.Listener
	rt.Add("pki", func(ctx context.Context) (string, error) {
		if havePre {
			ln = pre
		} else {
			l, err := srv.Listen(ctx)
			if err != nil {
				return "", err
			}
			ln = l
		}
		return ln.Addr().String(), nil
	}, func(ctx context.Context) error {
		return srv.Serve(ctx, ln)
	}, func() {
		if ln != nil {
			_ = ln.Close()
		}
	})
	return nil
}
