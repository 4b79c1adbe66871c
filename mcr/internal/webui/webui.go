// Package webui is MCR's browser UI: repositories, tags, manifests (with
// the platforms of an index), layers and sizes, referrers, and the access
// rules (admins change them). Sign-in is MCIAS single sign-on
// (mcdsl/web.SSOClient); pages are server-rendered from embedded templates
// without JavaScript; every form carries a CSRF token (mcdsl/csrf). The
// UI reads and changes everything through the management API's
// in-process gRPC connection with the signed-in user's token, so it sees
// exactly what mcrctl would.
package webui

import (
	"context"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/csrf"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
	mcweb "git.metacircular.net/metacircular/mcdsl/web"
	mcrv1 "git.metacircular.net/metacircular/mcr/gen/mcr/v1"
	assets "git.metacircular.net/metacircular/mcr/web"
)

// Cookie names: MCR's own, so a browser signed in to MCIAS on the same
// host (a test machine, a single-host install) keeps both sessions.
const (
	SessionCookie = "__Host-mcr_session"
	CSRFCookie    = "__Host-mcr_csrf"
)

// SSO is MCR's registration as an MCIAS SSO client.
type SSO struct {
	MCIASURL, ClientID, RedirectURI, CACert string
}

// Deps are what the UI needs.
type Deps struct {
	// Conn reaches the management API in process (grpcserver Local).
	Conn grpc.ClientConnInterface
	Auth auth.Validator
	// CSRFKey signs CSRF tokens (at least 32 bytes).
	CSRFKey []byte
	SSO     SSO
	Logger  *slog.Logger
}

// UI is the web UI handler.
type UI struct {
	d        Deps
	sso      *mcweb.SSOClient
	render   *mcweb.Renderer
	csrf     *csrf.Protector
	registry mcrv1.RegistryServiceClient
	policies mcrv1.PolicyServiceClient
	mux      *http.ServeMux
}

var funcs = template.FuncMap{
	"join":  strings.Join,
	"bytes": humanBytes,
	"when": func(ts *timestamppb.Timestamp) string {
		if ts == nil {
			return "—"
		}
		return ts.AsTime().UTC().Format("2006-01-02 15:04 UTC")
	},
	"mediatype": func(mt string) string {
		switch mt {
		case "application/vnd.oci.image.manifest.v1+json":
			return "OCI image"
		case "application/vnd.oci.image.index.v1+json":
			return "OCI index"
		case "application/vnd.docker.distribution.manifest.v2+json":
			return "Docker image"
		case "application/vnd.docker.distribution.manifest.list.v2+json":
			return "Docker manifest list"
		}
		return mt
	},
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// New builds the UI.
func New(d Deps) (*UI, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := mcweb.NewRenderer(assets.FS, "templates/layout/*.html", "templates/pages/*.html", funcs)
	if err != nil {
		return nil, err
	}
	p, err := csrf.New(d.CSRFKey, csrf.Options{CookieName: CSRFCookie, SessionCookie: SessionCookie})
	if err != nil {
		return nil, err
	}
	tlsCfg, err := tlsutil.ClientConfig(d.SSO.CACert)
	if err != nil {
		return nil, err
	}
	ui := &UI{
		d: d, render: r, csrf: p,
		sso: &mcweb.SSOClient{MCIASURL: d.SSO.MCIASURL, ClientID: d.SSO.ClientID, RedirectURI: d.SSO.RedirectURI,
			HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}},
		registry: mcrv1.NewRegistryServiceClient(d.Conn), policies: mcrv1.NewPolicyServiceClient(d.Conn),
		mux: http.NewServeMux(),
	}
	static, err := fs.Sub(assets.FS, "static")
	if err != nil {
		return nil, err
	}
	ui.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	ui.mux.HandleFunc("GET /login", ui.sso.Redirect)
	ui.mux.HandleFunc("GET /sso/callback", ui.callback)
	ui.mux.HandleFunc("POST /logout", ui.logout)
	ui.mux.HandleFunc("GET /{$}", ui.signedIn(ui.repos))
	ui.mux.HandleFunc("GET /repos/{name...}", ui.signedIn(ui.repo))
	ui.mux.HandleFunc("GET /manifest", ui.signedIn(ui.manifest))
	ui.mux.HandleFunc("GET /policies", ui.signedIn(ui.policiesPage))
	ui.mux.HandleFunc("POST /policies", ui.signedIn(ui.addPolicy))
	ui.mux.HandleFunc("POST /policies/{id}/delete", ui.signedIn(ui.deletePolicy))
	return ui, nil
}

// ServeHTTP serves the UI behind the CSRF check; paths it does not know
// are a JSON 404, like the rest of MCR.
func (ui *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := ui.mux.Handler(r); pattern == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"no such endpoint"}`))
		return
	}
	ui.csrf.Middleware(ui.mux).ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	User  *auth.Identity
	CSRF  string
	Flash string
	Error string
	Host  string
	Data  any
}

type userKey struct{}

// signedIn runs h for a browser with a valid session, else shows the
// sign-in page.
func (ui *UI) signedIn(h func(http.ResponseWriter, *http.Request, *page)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := &page{CSRF: csrf.Token(r), Host: r.Host, Flash: mcweb.PopFlash(w, r)}
		tok, ok := auth.TokenFromRequest(r, SessionCookie)
		if ok {
			id, err := ui.d.Auth.ValidateToken(r.Context(), tok)
			if err == nil {
				p.User = id
				ctx := metadata.AppendToOutgoingContext(r.Context(), "authorization", "Bearer "+tok)
				h(w, r.WithContext(context.WithValue(ctx, userKey{}, id)), p)
				return
			}
			if !errors.Is(err, auth.ErrInvalidToken) {
				ui.show(w, http.StatusServiceUnavailable, "signin", p, "MCIAS is unavailable; try again shortly.")
				return
			}
			mcweb.ClearSession(w, SessionCookie)
		}
		if r.Method != http.MethodGet {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		ui.show(w, http.StatusOK, "signin", p, "")
	}
}

func (ui *UI) show(w http.ResponseWriter, status int, name string, p *page, errMsg string) {
	p.Error = errMsg
	if err := ui.render.Render(w, status, name, "layout", p); err != nil {
		ui.d.Logger.Error("render", "page", name, "error", err)
	}
}

// fail shows an API error on the error page with its status.
func (ui *UI) fail(w http.ResponseWriter, p *page, err error) {
	s := apierr.FromGRPC(err)
	ui.show(w, s.HTTPStatus(), "error", p, s.Message)
}

func (ui *UI) callback(w http.ResponseWriter, r *http.Request) {
	tok, err := ui.sso.Callback(w, r)
	if err != nil {
		ui.d.Logger.Info("sso callback refused", "reason", err.Error())
		ui.show(w, http.StatusBadRequest, "signin", &page{CSRF: csrf.Token(r), Host: r.Host}, "Sign-in failed: "+err.Error())
		return
	}
	mcweb.SetSession(w, SessionCookie, tok.Token, tok.ExpiresAt)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (ui *UI) logout(w http.ResponseWriter, r *http.Request) {
	mcweb.ClearSession(w, SessionCookie)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func errMessage(err error) string { return apierr.FromGRPC(err).Message }
