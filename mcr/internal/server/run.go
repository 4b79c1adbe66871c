package server

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	mcrv1 "git.metacircular.net/metacircular/mcr/gen/mcr/v1"
	"git.metacircular.net/metacircular/mcr/internal/access"
	"git.metacircular.net/metacircular/mcr/internal/blob"
	"git.metacircular.net/metacircular/mcr/internal/gc"
	"git.metacircular.net/metacircular/mcr/internal/grpcapi"
	"git.metacircular.net/metacircular/mcr/internal/httpapi"
	"git.metacircular.net/metacircular/mcr/internal/meta"
	"git.metacircular.net/metacircular/mcr/internal/tokenauth"
	"git.metacircular.net/metacircular/mcr/internal/upload"
	"git.metacircular.net/metacircular/mcr/internal/webui"
)

// stores are MCR's state: the database and the content store.
type stores struct {
	meta    *meta.Store
	blobs   *blob.Store
	uploads *upload.Service
}

// openStores opens the database and the blob store and puts back any blob
// a crash left in the trash while its row survived.
func openStores(ctx context.Context, cfg *Config, logger *slog.Logger) (*stores, error) {
	st, err := meta.Open(ctx, cfg.Database.Path, logger)
	if err != nil {
		return nil, err
	}
	bs, err := blob.Open(cfg.Registry.Storage)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	if err := bs.Recover(ctx, func(ctx context.Context, d digest.Digest, fn func(bool) error) error {
		return st.BlobTx(ctx, d.String(), fn)
	}); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("recover blob trash: %w", err)
	}
	return &stores{meta: st, blobs: bs, uploads: upload.New(st, bs)}, nil
}

// policyHolder keeps the rules in force; Reload rereads them.
type policyHolder struct {
	st     *meta.Store
	agents []string
	p      atomic.Pointer[access.Policy]
}

func (h *policyHolder) Load() *access.Policy { return h.p.Load() }

func (h *policyHolder) Reload(ctx context.Context) error {
	rules, err := h.st.Rules(ctx)
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	h.p.Store(access.New(rules, h.agents))
	return nil
}

// Build constructs MCR on rt: the OCI distribution API and token endpoint
// (/v2/), the management API's REST face (/v1/) and the web UI (/) on
// server.listen_addr, the management gRPC API on server.grpc_addr, and the
// scheduled garbage collector. Tests hand in pre-bound listeners "http"
// and "grpc".
func Build(ctx context.Context, cfg *Config, rt *service.Runtime) error {
	s, err := openStores(ctx, cfg, rt.Logger)
	if err != nil {
		return err
	}
	rt.OnClose(s.meta.Close)
	key, err := tokenauth.LoadKey(cfg.Registry.TokenKey)
	if err != nil {
		return err
	}
	issuer := tokenauth.NewIssuer(key, "mcr", cfg.Registry.Service, cfg.Registry.TokenTTL.Duration)
	validator, err := auth.New(cfg.MCIAS, auth.Options{})
	if err != nil {
		return err
	}
	pol := &policyHolder{st: s.meta, agents: cfg.Registry.AgentAccounts}
	if err := pol.Reload(ctx); err != nil {
		return err
	}
	collector := gc.New(s.meta, s.blobs, s.uploads, cfg.GC.Grace.Duration, cfg.GC.UploadTTL.Duration, rt.Logger)
	check := func(ctx context.Context) error { return s.meta.DB().PingContext(ctx) }
	rt.SetHealth(check)

	gs, err := grpcserver.New(rt.GRPCOptions(cfg.Server, grpcserver.Options{
		Service: ServiceName, Validator: validator, Health: check, Maps: grpcapi.MethodMaps(),
	}))
	if err != nil {
		return err
	}
	deps := grpcapi.Deps{Store: s.meta, GC: collector, Policy: pol.Load, Reload: pol.Reload, Agents: cfg.Registry.AgentAccounts}
	grpcapi.Register(gs, deps, snapshot.NewServer(s.meta.DB(), "", ServiceName))
	rest, err := gateway.New(gs.Local(), gateway.Options{Status: grpcapi.RESTStatus, Logger: rt.Logger},
		gateway.Service(mcrv1.RegisterRegistryServiceHandlerClient, mcrv1.NewRegistryServiceClient),
		gateway.Service(mcrv1.RegisterPolicyServiceHandlerClient, mcrv1.NewPolicyServiceClient),
		gateway.Service(mcrv1.RegisterGCServiceHandlerClient, mcrv1.NewGCServiceClient),
		gateway.Service(mcrv1.RegisterAuditServiceHandlerClient, mcrv1.NewAuditServiceClient),
	)
	if err != nil {
		return err
	}
	dist := httpapi.New(httpapi.Deps{
		Store: s.meta, Blobs: s.blobs, Uploads: s.uploads, Issuer: issuer, Policy: pol.Load, Auth: validator,
		PublicURL: cfg.Registry.PublicURL, AllowSparse: cfg.Registry.AllowSparse, Logger: rt.Logger,
	})
	var ui http.Handler
	if cfg.Web.Enabled {
		w, err := webui.New(webui.Deps{
			Conn: gs.Local(), Auth: validator, CSRFKey: csrfKey(key), Logger: rt.Logger,
			SSO: webui.SSO{MCIASURL: cfg.Web.SSOMCIASURL, ClientID: cfg.Web.SSOClientID, RedirectURI: cfg.Web.SSORedirectURI, CACert: cfg.MCIAS.CACert},
		})
		if err != nil {
			return err
		}
		ui = w
	}
	if err := rt.HTTP(cfg.Server, site{dist: dist, rest: rest, ui: ui}); err != nil {
		return err
	}
	rt.GRPC(gs)
	if !cfg.GC.Disabled {
		rt.Task("gc", func(ctx context.Context) error { return gcLoop(ctx, collector, cfg.GC.Interval.Duration, rt.Logger) })
	}
	return nil
}

// csrfKey derives the web UI's CSRF key from the token signing key, so
// MCR keeps one secret file.
func csrfKey(key ed25519.PrivateKey) []byte {
	m := hmac.New(sha256.New, key.Seed())
	m.Write([]byte("mcr web csrf v1"))
	return m.Sum(nil)
}

// site routes the HTTPS listener: /v2 to the distribution API, /v1/ to the
// generated REST API, the rest to the web UI; anything else is a JSON 404.
type site struct {
	dist *httpapi.Handler
	rest http.Handler
	ui   http.Handler
}

func (s site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/v2" || strings.HasPrefix(p, "/v2/"):
		if p == "/v2" {
			r.URL.Path = "/v2/"
		}
		s.dist.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/v1/"):
		s.rest.ServeHTTP(w, r)
	case s.ui != nil:
		s.ui.ServeHTTP(w, r)
	default:
		gateway.RoutingError(w, http.StatusNotFound)
	}
}

// gcLoop collects every interval until ctx ends; a failed run is logged
// and retried at the next tick.
func gcLoop(ctx context.Context, c *gc.Collector, every time.Duration, logger *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := c.Run(ctx, gc.Options{}); err != nil && ctx.Err() == nil {
				logger.Error("scheduled garbage collection failed", "error", err)
			}
		}
	}
}
