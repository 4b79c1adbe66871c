package server

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"

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
	"git.metacircular.net/metacircular/metacrypt/internal/webui"
)

// Builder returns the build function of service.Run for a binary of the
// given version.
func Builder(version string) func(ctx context.Context, cfg *Config, rt *service.Runtime) error {
	return func(ctx context.Context, cfg *Config, rt *service.Runtime) error {
		return Build(ctx, cfg, rt, version)
	}
}

// Build constructs Metacrypt on rt, sealed: the store, the barrier, the
// policy, the mount table with the CA, SSH CA, transit and u2u engines,
// the gRPC API on server.grpc_addr and, on server.listen_addr, its REST
// face with the public CA endpoints, the ACME server and, with
// web.enabled, the web UI; with pki.listen_addr, those public endpoints
// alone over plain HTTP too;
// the periodic engine work (CRL refresh) and the ACME validation queue.
// Tests hand in pre-bound listeners "http", "grpc" and "pki".
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
	eng := newEngines(reg, mounts, st, pol, b.Sealed, rt.Logger)

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
	a := &app{barrier: b, mounts: mounts, policy: pol, ca: caSvc, ssh: eng.ssh, transit: eng.transit, u2u: eng.u2u,
		acme: acmeSvc, version: version, logger: rt.Logger}
	register(gs, a, st)
	restGW, err := restAPI(gs, rt.Logger)
	if err != nil {
		return err
	}
	var rest http.Handler = restGW
	if cfg.Web.Enabled {
		ui, err := webUI(cfg, gs, validator, rt.Logger)
		if err != nil {
			return err
		}
		rest = withUI(restGW, ui)
	}
	public := &pkiHTTP{ca: caSvc, ssh: eng.ssh, logger: rt.Logger}
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

// webUI is the browser UI over the in-process gRPC connection, so every
// page goes through the same method maps, seal check and policy as an API
// call. The CSRF key is drawn at every start: a restart (which seals
// Metacrypt anyway) only makes open forms ask for a reload.
func webUI(cfg *Config, gs *grpcserver.Server, v auth.Validator, logger *slog.Logger) (*webui.UI, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return webui.New(webui.Deps{
		Conn: gs.Local(), Auth: v, CSRFKey: key, Logger: logger,
		SSO: webui.SSO{
			MCIASURL: cfg.Web.SSOMCIASURL, ClientID: cfg.Web.SSOClientID,
			RedirectURI: cfg.Web.SSORedirectURI, CACert: cfg.MCIAS.CACert,
		},
	})
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
