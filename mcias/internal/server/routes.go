package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	"git.metacircular.net/metacircular/mcdsl/jsonapi"
	"git.metacircular.net/metacircular/mcdsl/metrics"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/webui"
)

// access is who may call a hand-written route.
type access int

const (
	// public: anyone, no checks (pages a browser is redirected to, public
	// key sets).
	public access = iota
	// browser: the web UI's JSON calls. They are CSRF-checked unless they
	// carry a bearer token, since a browser sends the session cookie along
	// with any same-site request.
	browser
	// signedIn: browser, and a valid token (bearer or session cookie).
	signedIn
)

// route is one hand-written HTTP endpoint.
type route struct {
	method, pattern string
	access          access
	// json: a JSON endpoint; a request body it is sent must be
	// application/json (jsonapi.RequireJSON), as on the generated REST API.
	json    bool
	handler http.HandlerFunc
}

// web is MCIAS's hand-written HTTP: only what is not an RPC. Every RPC's
// REST endpoint is generated from the proto (grpc.go, restAPI).
type web struct {
	cfg    *Config
	svc    *identity.Service
	logger *slog.Logger
	// passkeys runs the WebAuthn ceremonies; nil when [webauthn] is not
	// configured.
	passkeys *identity.Passkeys
}

// routes is the one table of MCIAS's hand-written HTTP endpoints, besides
// the web UI's pages (webui.UI.Mount) and what the service runtime adds
// (/v1/health, /metrics).
func (h *web) routes() []route {
	return []route{
		// The JWK Set as verifiers expect it, cacheable (GetJWKS over gRPC).
		{http.MethodGet, "/.well-known/jwks.json", public, false, h.jwks},
		// SSO's browser step: a page and redirects, not an RPC (sso.go).
		{http.MethodGet, "/sso/authorize", public, false, h.ssoAuthorize},
		// WebAuthn ceremonies: browser-only, bound to the web origin
		// (webauthn.go).
		{http.MethodPost, "/v1/webauthn/login/begin", browser, true, h.loginBegin},
		{http.MethodPost, "/v1/webauthn/login/finish", browser, true, h.loginFinish},
		{http.MethodPost, "/v1/webauthn/register/begin", signedIn, true, h.registerBegin},
		{http.MethodPost, "/v1/webauthn/register/finish", signedIn, true, h.registerFinish},
	}
}

// httpHandler is everything MCIAS serves over HTTP: the hand-written
// routes, the web UI, and, for any other request, the REST API generated
// from the proto (rest), which also answers unknown paths (404 "no such
// endpoint"). validate answers the REST rule of ValidateToken
// (validatePath) on the gateway's behalf (validate_rest.go).
func httpHandler(cfg *Config, svc *identity.Service, rest, validate http.Handler, logger *slog.Logger) (http.Handler, error) {
	h := &web{cfg: cfg, svc: svc, logger: logger}
	if cfg.WebAuthn.Enabled() {
		pk, err := identity.NewPasskeys(svc, cfg.WebAuthn.passkeys())
		if err != nil {
			return nil, err
		}
		h.passkeys = pk
	}
	ui, err := webui.New(webui.Options{Service: svc, Passkeys: h.passkeys, Logger: logger, SSOOrigins: ssoOrigins(cfg.SSOClients)})
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	// Names each hand-written request's route for the request metrics by
	// its pattern; the gateway names the generated ones itself.
	r.Use(metrics.ChiRoutes)
	guards := map[access][]func(http.Handler) http.Handler{
		browser:  {ui.CSRFUnlessBearer},
		signedIn: {ui.CSRFUnlessBearer, auth.Middleware(svc, auth.MiddlewareOptions{})},
	}
	for _, rt := range h.routes() {
		var chain []func(http.Handler) http.Handler
		if rt.json {
			chain = append(chain, jsonapi.RequireJSON)
		}
		chain = append(chain, guards[rt.access]...)
		r.With(chain...).Method(rt.method, rt.pattern, rt.handler)
	}
	r.Handle(validatePath, validate)
	ui.Mount(r)
	r.NotFound(rest.ServeHTTP)
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		gateway.RoutingError(w, http.StatusMethodNotAllowed)
	})
	return r, nil
}

// jwks is GET /.well-known/jwks.json.
func (h *web) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_ = json.NewEncoder(w).Encode(h.svc.JWKS())
}

// ssoOrigins are the distinct origins of the SSO clients' redirect URIs.
func ssoOrigins(clients []SSOClient) []string {
	var out []string
	for _, c := range clients {
		u, err := url.Parse(c.RedirectURI)
		if err != nil || u.Host == "" {
			continue // LoadConfig refused it already
		}
		if o := u.Scheme + "://" + u.Host; !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}
