package webui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/csrf"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	"git.metacircular.net/metacircular/mcdsl/metrics"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
	mcweb "git.metacircular.net/metacircular/mcdsl/web"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	assets "git.metacircular.net/metacircular/metacrypt/web"
)

// Cookie names: Metacrypt's own, so a browser signed in to MCIAS or MCR on
// the same host keeps every session apart.
const (
	SessionCookie = "__Host-metacrypt_session"
	CSRFCookie    = "__Host-metacrypt_csrf"
)

// maxForm bounds a form body; the largest legitimate one (a policy rule)
// is a few hundred bytes.
const maxForm = 64 << 10

// SSO is Metacrypt's registration as an MCIAS SSO client.
type SSO struct {
	// MCIASURL is MCIAS as the browser reaches it.
	MCIASURL string
	// ClientID and RedirectURI are exactly what MCIAS has registered; the
	// redirect URI's path is /sso/callback.
	ClientID, RedirectURI string
	// CACert verifies MCIAS for the code exchange (empty: system roots).
	CACert string
}

// Deps are what the UI needs.
type Deps struct {
	// Conn reaches the gRPC API in process (grpcserver Local).
	Conn grpc.ClientConnInterface
	// Auth validates the session's MCIAS token.
	Auth auth.Validator
	// CSRFKey signs CSRF tokens (at least 32 bytes).
	CSRFKey []byte
	SSO     SSO
	Logger  *slog.Logger
}

// UI is the web UI handler.
type UI struct {
	d      Deps
	sso    *mcweb.SSOClient
	render *mcweb.Renderer
	csrf   *csrf.Protector
	forms  *submissions
	sys    mcv1.SysServiceClient
	ca     mcv1.CAServiceClient
	acme   mcv1.ACMEServiceClient
	policy mcv1.PolicyServiceClient
	mux    *http.ServeMux
}

var funcs = template.FuncMap{
	"join":       strings.Join,
	"when":       when,
	"statusText": http.StatusText,
	"certStatus": certStatus,
	"inc":        func(n int) int { return n + 1 },
}

func when(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "—"
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04 UTC")
}

// certStatus is a certificate's state as the list's status filter names
// it.
func certStatus(c *mcv1.Certificate) string {
	switch {
	case c.GetRevoked():
		return "revoked"
	case c.GetNotAfter() != nil && c.GetNotAfter().AsTime().Before(time.Now()):
		return "expired"
	}
	return "valid"
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
		d: d, render: r, csrf: p, forms: newSubmissions(),
		sso: &mcweb.SSOClient{MCIASURL: d.SSO.MCIASURL, ClientID: d.SSO.ClientID, RedirectURI: d.SSO.RedirectURI,
			HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}},
		sys: mcv1.NewSysServiceClient(d.Conn), ca: mcv1.NewCAServiceClient(d.Conn),
		acme: mcv1.NewACMEServiceClient(d.Conn), policy: mcv1.NewPolicyServiceClient(d.Conn),
		mux: http.NewServeMux(),
	}
	static, err := fs.Sub(assets.FS, "static")
	if err != nil {
		return nil, err
	}
	m := ui.mux
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /login", ui.sso.Redirect)
	m.HandleFunc("GET /sso/callback", ui.callback)
	m.HandleFunc("POST /logout", ui.logout)
	m.HandleFunc("GET /{$}", ui.public(ui.statusPage))
	m.HandleFunc("POST /unseal", ui.public(ui.unseal))
	m.HandleFunc("POST /seal", ui.signedIn(ui.seal))
	m.HandleFunc("GET /mounts/{mount}", ui.signedIn(ui.issuersPage))
	m.HandleFunc("POST /mounts/{mount}/issuers", ui.signedIn(ui.createIssuer))
	m.HandleFunc("GET /mounts/{mount}/issue", ui.signedIn(ui.issuePage))
	m.HandleFunc("POST /mounts/{mount}/issue", ui.signedIn(ui.issue))
	m.HandleFunc("GET /mounts/{mount}/certs", ui.signedIn(ui.certsPage))
	m.HandleFunc("GET /mounts/{mount}/certs/{serial}", ui.signedIn(ui.certPage))
	m.HandleFunc("POST /mounts/{mount}/certs/{serial}/revoke", ui.signedIn(ui.revoke))
	m.HandleFunc("GET /mounts/{mount}/eab", ui.signedIn(ui.eabPage))
	m.HandleFunc("POST /mounts/{mount}/eab", ui.signedIn(ui.createEAB))
	m.HandleFunc("POST /mounts/{mount}/eab/{kid}/revoke", ui.signedIn(ui.revokeEAB))
	m.HandleFunc("GET /policy", ui.signedIn(ui.policyPage))
	m.HandleFunc("POST /policy/rules", ui.signedIn(ui.createRule))
	m.HandleFunc("POST /policy/rules/{id}/delete", ui.signedIn(ui.deleteRule))
	m.HandleFunc("POST /policy/limits", ui.signedIn(ui.createLimit))
	m.HandleFunc("POST /policy/limits/{id}/delete", ui.signedIn(ui.deleteLimit))
	return ui, nil
}

// ServeHTTP serves the UI behind the CSRF check. Paths it does not know
// are the API's JSON 404, never an HTML page.
func (ui *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := ui.mux.Handler(r)
	if pattern == "" {
		gateway.RoutingError(w, http.StatusNotFound)
		return
	}
	metrics.SetRoute(r.Context(), pattern)
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if !strings.HasPrefix(pattern, "GET /static/") {
		// Pages show certificates, credentials and private keys to one
		// signed-in user: no cache, shared or private, keeps them.
		w.Header().Set("Cache-Control", "no-store")
	}
	ui.csrf.Middleware(ui.mux).ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	User  *auth.Identity
	CSRF  string
	Flash string
	// Error is shown above the content; Code, when set, is the API's
	// status for it.
	Error string
	Code  int
	// Mount is the mount the page is about (the mount tabs show).
	Mount string
	// Nav names the active tab.
	Nav string
	// Next is where the unseal form returns to.
	Next string
	Data any
}

// setError puts an API error on the page and returns its HTTP status.
func (p *page) setError(err error) int {
	s := apierr.FromGRPC(err)
	p.Error, p.Code = s.Message, s.HTTPStatus()
	if s.RetryAfter > 0 {
		p.Error += fmt.Sprintf(" (try again in %d s)", int64(math.Ceil(s.RetryAfter.Seconds())))
	}
	return p.Code
}

// handler is a page handler: p has the user (or nil, for public pages) and
// r's context carries the user's token to the API.
type handler func(w http.ResponseWriter, r *http.Request, p *page)

func (ui *UI) newPage(w http.ResponseWriter, r *http.Request) *page {
	return &page{CSRF: csrf.Token(r), Flash: mcweb.PopFlash(w, r), Mount: r.PathValue("mount")}
}

// session resolves the session cookie: the user and a context carrying
// their token, or no user. Only the cookie counts: a UI request's
// Authorization header is ignored, so the session the CSRF token is bound
// to is the one that acts. An invalid or expired token clears the cookie;
// err is set only when MCIAS cannot answer.
func (ui *UI) session(w http.ResponseWriter, r *http.Request) (*auth.Identity, context.Context, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, r.Context(), nil
	}
	id, err := ui.d.Auth.ValidateToken(r.Context(), c.Value)
	if err != nil {
		if errors.Is(err, auth.ErrInvalidToken) {
			mcweb.ClearSession(w, SessionCookie)
			return nil, r.Context(), nil
		}
		return nil, r.Context(), err
	}
	ctx := metadata.AppendToOutgoingContext(r.Context(), "authorization", "Bearer "+c.Value)
	return id, ctx, nil
}

// public runs h with or without a signed-in user. MCIAS being down does
// not stop a public page (the unseal form needs no MCIAS); the page says
// so.
func (ui *UI) public(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := ui.newPage(w, r)
		id, ctx, err := ui.session(w, r)
		if err != nil {
			p.Error = "MCIAS is unavailable, so you cannot sign in right now; unsealing still works."
		}
		p.User = id
		h(w, r.WithContext(ctx), p)
	}
}

// signedIn runs h for a browser with a valid session, else shows the
// sign-in page (a GET) or sends it to the start page (anything else:
// nothing is done for a signed-out POST).
func (ui *UI) signedIn(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := ui.newPage(w, r)
		id, ctx, err := ui.session(w, r)
		if err != nil {
			p.Error, p.Code = "MCIAS is unavailable; try again shortly.", http.StatusServiceUnavailable
			ui.show(w, http.StatusServiceUnavailable, "signin", p)
			return
		}
		if id == nil {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				mcweb.SetFlash(w, "Sign in first: nothing was changed.")
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return
			}
			ui.show(w, http.StatusOK, "signin", p)
			return
		}
		p.User = id
		h(w, r.WithContext(ctx), p)
	}
}

func (ui *UI) show(w http.ResponseWriter, status int, name string, p *page) {
	if err := ui.render.Render(w, status, name, "layout", p); err != nil {
		ui.d.Logger.Error("render", "page", name, "error", err)
	}
}

// sealedData is the sealed page's.
type sealedData struct {
	Status *mcv1.StatusResponse
}

// fail shows an API error: the unseal form when the barrier is sealed,
// the sign-in page when the token stopped working, else the error page
// with the API's message and status.
func (ui *UI) fail(w http.ResponseWriter, r *http.Request, p *page, err error) {
	switch apierr.FromGRPC(err).Kind {
	case apierr.Unavailable:
		if st, serr := ui.sys.Status(r.Context(), &mcv1.StatusRequest{}); serr == nil && st.GetSealed() {
			p.Next = "/"
			if r.Method == http.MethodGet {
				p.Next = r.URL.RequestURI()
			}
			p.Data = sealedData{Status: st}
			ui.show(w, http.StatusServiceUnavailable, "sealed", p)
			return
		}
	case apierr.Unauthenticated:
		mcweb.ClearSession(w, SessionCookie)
		p.User = nil
		p.Error, p.Code = "Your session has ended; sign in again.", http.StatusUnauthorized
		ui.show(w, http.StatusUnauthorized, "signin", p)
		return
	}
	ui.show(w, p.setError(err), "error", p)
}

// formError answers a form the API refused: sealed and signed-out states
// as fail does, anything else by showing the form again (redisplay) with
// the error and its status.
func (ui *UI) formError(w http.ResponseWriter, r *http.Request, p *page, err error, redisplay func(status int)) {
	switch apierr.FromGRPC(err).Kind {
	case apierr.Unavailable, apierr.Unauthenticated:
		ui.fail(w, r, p, err)
		return
	}
	redisplay(p.setError(err))
}

// done finishes a successful POST: the message for the next page and a
// redirect to it (POST-redirect-GET).
func done(w http.ResponseWriter, r *http.Request, msg, to string) {
	mcweb.SetFlash(w, msg)
	http.Redirect(w, r, to, http.StatusSeeOther) //nolint:gosec // to is built here, or the unseal form's next after localPath
}

func (ui *UI) callback(w http.ResponseWriter, r *http.Request) {
	tok, err := ui.sso.Callback(w, r)
	if err != nil {
		ui.d.Logger.Info("sso callback refused", "reason", err.Error())
		p := &page{CSRF: csrf.Token(r), Error: "Sign-in failed: " + err.Error(), Code: http.StatusBadRequest}
		ui.show(w, http.StatusBadRequest, "signin", p)
		return
	}
	mcweb.SetSession(w, SessionCookie, tok.Token, tok.ExpiresAt)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (ui *UI) logout(w http.ResponseWriter, r *http.Request) {
	mcweb.ClearSession(w, SessionCookie)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// localPath is next if it is a path on this site, else "/": the unseal
// form's return address must not send the browser elsewhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// list splits a form field on commas and white space.
func list(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t'
	})
}

// errMessage is an API error as a line of text: its message and status.
func errMessage(err error) string {
	s := apierr.FromGRPC(err)
	return fmt.Sprintf("%s (%d %s)", s.Message, s.HTTPStatus(), http.StatusText(s.HTTPStatus()))
}
