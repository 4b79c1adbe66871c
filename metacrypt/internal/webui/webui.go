package webui

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
	// The other engines' services (ssh.go, transit.go, u2u.go).
	ssh     mcv1.SSHServiceClient
	transit mcv1.TransitServiceClient
	u2u     mcv1.U2UServiceClient
	mux     *http.ServeMux
}

var funcs = template.FuncMap{
	"join":       strings.Join,
	"when":       when,
	"statusText": http.StatusText,
	"certStatus": certStatus,
	"inc":        func(n int) int { return n + 1 },
	"mountPath":  mountPath,
	"sshStatus":  sshStatus,
	"pairs":      pairs,
	"base64":     base64.StdEncoding.EncodeToString,
}

func when(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "—"
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04 UTC")
}

// pairs shows a map of options as "name=value" lines, by name.
func pairs(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for k, v := range m {
		lines = append(lines, k+"="+v)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
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
		ssh: mcv1.NewSSHServiceClient(d.Conn), transit: mcv1.NewTransitServiceClient(d.Conn), u2u: mcv1.NewU2UServiceClient(d.Conn),
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
	m.HandleFunc("GET /mounts/{mount}", ui.mounted(engineCA, ui.issuersPage))
	m.HandleFunc("POST /mounts/{mount}/issuers", ui.mounted(engineCA, ui.createIssuer))
	m.HandleFunc("GET /mounts/{mount}/issue", ui.mounted(engineCA, ui.issuePage))
	m.HandleFunc("POST /mounts/{mount}/issue", ui.mounted(engineCA, ui.issue))
	m.HandleFunc("GET /mounts/{mount}/certs", ui.mounted(engineCA, ui.certsPage))
	m.HandleFunc("GET /mounts/{mount}/certs/{serial}", ui.mounted(engineCA, ui.certPage))
	m.HandleFunc("POST /mounts/{mount}/certs/{serial}/revoke", ui.mounted(engineCA, ui.revoke))
	m.HandleFunc("GET /mounts/{mount}/eab", ui.mounted(engineCA, ui.eabPage))
	m.HandleFunc("POST /mounts/{mount}/eab", ui.mounted(engineCA, ui.createEAB))
	m.HandleFunc("POST /mounts/{mount}/eab/{kid}/revoke", ui.mounted(engineCA, ui.revokeEAB))
	ui.sshRoutes(m)
	ui.transitRoutes(m)
	ui.u2uRoutes(m)
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
	// Mount is the mount the page is about, and Engine its type: the
	// layout shows that engine's tabs.
	Mount, Engine string
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

// The engines the UI has pages for, by mount type (Mount.type).
const (
	engineCA      = "ca"
	engineSSH     = "ssh"
	engineTransit = "transit"
	engineU2U     = "u2u"
)

// mountPath is the UI's page of a mount of type engine ("" for a type
// the UI has no pages for).
func mountPath(engine, mount string) string {
	m := url.PathEscape(mount)
	switch engine {
	case engineCA:
		return "/mounts/" + m
	case engineSSH, engineTransit, engineU2U:
		return "/" + engine + "/" + m
	}
	return ""
}

// mountType is the type of the mount named mount ("" when there is
// none), from SysService.ListMounts.
func (ui *UI) mountType(r *http.Request, mount string) (string, error) {
	resp, err := ui.sys.ListMounts(r.Context(), &mcv1.ListMountsRequest{})
	if err != nil {
		return "", err
	}
	for _, m := range resp.GetMounts() {
		if m.GetName() == mount {
			return m.GetType(), nil
		}
	}
	return "", nil
}

// mounted runs h as signedIn does, for a page of one of engine's mounts.
func (ui *UI) mounted(engine string, h handler) http.HandlerFunc {
	return ui.signedIn(func(w http.ResponseWriter, r *http.Request, p *page) {
		p.Engine = engine
		h(w, r, p)
	})
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

// badField is the UI's own refusal of a form field it cannot translate
// for the API (a number that is not one, base64 that is not), shaped as
// the API's 400 naming the field, so the pages show it as they show the
// API's.
func badField(field, format string, args ...any) error {
	return apierr.GRPC(nil, apierr.InvalidField(field, format, args...))
}

// listDenied is the API's refusal of a listing that a page can do
// without, because the forms beside it may still be allowed (a rule may
// allow "encrypt" on a key but not "read" on the keys): the message to
// show in its place, or ok=false for any other error.
func listDenied(err error) (msg string, ok bool) {
	if apierr.FromGRPC(err).Kind != apierr.Denied {
		return "", false
	}
	return errMessage(err), true
}

// Paging of the certificate lists: pageSize rows a page; the API returns
// at most maxList rows, so paging reaches the first maxList matches.
const (
	pageSize = 50
	maxList  = 1000
)

// pageParam is the list page a query asks for (from 0).
func pageParam(v url.Values) int {
	if n, err := strconv.Atoi(v.Get("page")); err == nil && n > 0 && n < maxList/pageSize {
		return n
	}
	return 0
}

// pageLimit is the limit to ask the API for to show page n: one row more
// than it shows, to know whether a next page exists.
func pageLimit(n int) int32 {
	return int32(min((n+1)*pageSize+1, maxList)) //nolint:gosec // at most maxList
}

// paged is page n of all (the API's answer for pageLimit(n)): its rows,
// whether a next page exists, and whether the matches go past what
// paging reaches.
func paged[T any](all []T, n int) (rows []T, next, truncated bool) {
	from, to := n*pageSize, (n+1)*pageSize
	if from < len(all) {
		rows = all[from:min(to, len(all))]
	}
	return rows, len(all) > to && to < maxList, len(all) >= maxList && to >= maxList
}

// errMessage is an API error as a line of text: its message and status.
func errMessage(err error) string {
	s := apierr.FromGRPC(err)
	return fmt.Sprintf("%s (%d %s)", s.Message, s.HTTPStatus(), http.StatusText(s.HTTPStatus()))
}
