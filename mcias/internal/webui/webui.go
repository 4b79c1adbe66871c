package webui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/csrf"
	mcweb "git.metacircular.net/metacircular/mcdsl/web"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	assets "git.metacircular.net/metacircular/mcias/web"
)

// Options are the UI's dependencies.
type Options struct {
	// Service does every operation; the UI only translates forms.
	Service *identity.Service
	// Passkeys runs the WebAuthn ceremonies; nil hides every passkey
	// control (no [webauthn] configured).
	Passkeys *identity.Passkeys
	// Logger receives internal errors (never secrets).
	Logger *slog.Logger
	// SSOOrigins are the origins of the registered SSO clients' redirect
	// URIs: the login form's submission ends there after /sso/authorize
	// (browsers apply CSP form-action to the redirects that follow a form).
	SSOOrigins []string
}

// UI is the MCIAS web UI.
type UI struct {
	svc      *identity.Service
	passkeys bool
	logger   *slog.Logger
	pages    *mcweb.Renderer
	static   http.Handler

	mu   sync.Mutex
	csrf *csrf.Protector
}

// New parses the embedded templates.
func New(opts Options) (*UI, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := mcweb.NewRenderer(assets.FS, "templates/layouts/*.html", "templates/pages/*.html", template.FuncMap{
		"join": strings.Join,
		"has":  slices.Contains[[]string],
		"when": when,
	})
	if err != nil {
		return nil, fmt.Errorf("web ui: %w", err)
	}
	if err := pages.AllowFormActions(opts.SSOOrigins...); err != nil {
		return nil, fmt.Errorf("web ui: %w", err)
	}
	static, err := fs.Sub(assets.FS, "static")
	if err != nil {
		return nil, fmt.Errorf("web ui: %w", err)
	}
	return &UI{
		svc: opts.Service, passkeys: opts.Passkeys != nil, logger: opts.Logger, pages: pages,
		static: http.StripPrefix("/static/", http.FileServerFS(static)),
	}, nil
}

// when formats a time (or a *time.Time) for people.
func when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return ""
		}
		t = *x
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// Mount adds the UI's pages to r: /, /login, /logout, /account[/...],
// /admin/... and /static/.... Every page and form goes through the CSRF
// middleware.
func (u *UI) Mount(r chi.Router) {
	r.Get("/static/*", u.serveStatic)
	r.Group(func(r chi.Router) {
		r.Use(noStore, limitBody, u.CSRF)
		r.Get("/", u.home)
		r.Get("/login", u.loginPage)
		r.Post("/login", u.login)
		r.Post("/logout", u.logout)
		r.Group(func(r chi.Router) {
			r.Use(u.requireUser)
			r.Get("/account", u.account)
			r.Post("/account/password", u.changePassword)
			r.Post("/account/totp/enroll", u.enrollTOTP)
			r.Post("/account/totp/confirm", u.confirmTOTP)
			r.Post("/account/totp/disable", u.disableTOTP)
			r.Post("/account/passkeys/{credential}/rename", u.renamePasskey)
			r.Post("/account/passkeys/{credential}/delete", u.deletePasskey)
			r.Group(func(r chi.Router) {
				r.Use(u.requireAdmin)
				r.Get("/admin/accounts", u.adminAccounts)
				r.Post("/admin/accounts", u.createAccount)
				r.Post("/admin/accounts/{id}/status", u.setStatus)
				r.Post("/admin/accounts/{id}/roles", u.setRoles)
				r.Post("/admin/accounts/{id}/password", u.resetPassword)
				r.Post("/admin/accounts/{id}/totp/disable", u.adminDisableTOTP)
				r.Post("/admin/accounts/{id}/token", u.issueToken)
				r.Post("/admin/accounts/{id}/delete", u.deleteAccount)
				r.Get("/admin/policies", u.adminPolicies)
				r.Post("/admin/policies", u.createPolicy)
				r.Post("/admin/policies/{id}/delete", u.deletePolicy)
				r.Get("/admin/keys", u.adminKeys)
				r.Post("/admin/keys/rotate", u.rotateKey)
			})
		})
	})
}

// serveStatic serves the embedded stylesheet and script (never a directory
// listing).
func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	u.static.ServeHTTP(w, r)
}

// noStore keeps pages (which may show secrets once) out of caches.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// maxForm bounds a form post (the largest is a policy rule).
const maxForm = 64 << 10

// limitBody bounds request bodies before anything parses them.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		next.ServeHTTP(w, r)
	})
}

// protector builds the CSRF protector on first use, with the key kept in
// the database (retrying on the next request if loading it failed).
func (u *UI) protector(ctx context.Context) (*csrf.Protector, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.csrf != nil {
		return u.csrf, nil
	}
	key, err := u.svc.WebCSRFKey(ctx)
	if err != nil {
		return nil, err
	}
	p, err := csrf.New(key, csrf.Options{})
	if err != nil {
		return nil, fmt.Errorf("csrf: %w", err)
	}
	u.csrf = p
	return p, nil
}

// CSRF is mcdsl/csrf's signed double-submit check with MCIAS's persistent
// key: unsafe methods need the token from the mc_csrf cookie in the
// csrf_token form field or the X-CSRF-Token header.
func (u *UI) CSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := u.protector(r.Context())
		if err != nil {
			u.logger.Error("web ui: csrf key", "error", err)
			http.Error(w, "service unavailable; try again", http.StatusServiceUnavailable)
			return
		}
		p.Middleware(next).ServeHTTP(w, r)
	})
}

// CSRFUnlessBearer applies CSRF to requests that would authenticate with
// the session cookie (the browser) and lets requests with a bearer token
// through: a cross-site page can make a browser send its cookies, never an
// Authorization header.
func (u *UI) CSRFUnlessBearer(next http.Handler) http.Handler {
	checked := u.CSRF(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.BearerToken(r.Header.Get("Authorization")); ok {
			next.ServeHTTP(w, r)
			return
		}
		checked.ServeHTTP(w, r)
	})
}

// --- sessions ---

// sessionToken is the MCIAS token in the session cookie.
func sessionToken(r *http.Request) string {
	c, err := r.Cookie(auth.DefaultCookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// session validates the session cookie: nil without a valid session, an
// error only when the check itself failed.
func (u *UI) session(r *http.Request) (*auth.Identity, error) {
	tok := sessionToken(r)
	if tok == "" {
		return nil, nil
	}
	id, err := u.svc.ValidateToken(r.Context(), tok)
	if errors.Is(err, identity.ErrInvalidToken) {
		return nil, nil
	}
	return id, err
}

// requireUser sends visitors without a valid session to the login page,
// coming back here (for a page view) afterwards.
func (u *UI) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := u.session(r)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		if id == nil {
			if sessionToken(r) != "" {
				mcweb.ClearSession(w, "")
			}
			target := "/login"
			if r.Method == http.MethodGet {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			} else {
				flash(w, true, "Your session has ended; sign in again.")
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithIdentity(r.Context(), id)))
	})
}

// requireAdmin answers 403 to non-admins (identity enforces it again on
// every operation).
func (u *UI) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !caller(r).IsAdmin() {
			u.errorPage(w, r, http.StatusForbidden, "Forbidden", "This page is for administrators.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func caller(r *http.Request) *auth.Identity {
	id, _ := auth.IdentityFrom(r.Context())
	return id
}

// safeNext returns next if it is a path on this site, else "". A local
// path starts with one "/" (not "//" or "/\", which browsers treat as
// another host) and has no control characters or backslashes (browsers
// drop or rewrite those, which can turn "/\t/evil" into "//evil").
func safeNext(next string) string {
	if next == "" || len(next) > 4096 || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return ""
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return ""
		}
	}
	p, err := url.Parse(next)
	if err != nil || p.Scheme != "" || p.Host != "" || p.User != nil {
		return ""
	}
	return next
}

// --- rendering ---

// flashMsg is the one-time message a page shows.
type flashMsg struct {
	Text  string
	Error bool
}

// flash queues a message for the next page (after a redirect). The first
// byte records whether it is an error.
func flash(w http.ResponseWriter, isErr bool, msg string) {
	kind := "+"
	if isErr {
		kind = "!"
	}
	mcweb.SetFlash(w, kind+msg)
}

func popFlash(w http.ResponseWriter, r *http.Request) flashMsg {
	m := mcweb.PopFlash(w, r)
	if m == "" {
		return flashMsg{}
	}
	return flashMsg{Text: m[1:], Error: m[0] == '!'}
}

// page is what every template gets; Data is the page's own.
type page struct {
	Title    string
	User     *auth.Identity
	CSRF     string
	Flash    flashMsg
	Passkeys bool
	Data     any
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	p := page{
		Title: title, User: caller(r), CSRF: csrf.Token(r), Flash: popFlash(w, r),
		Passkeys: u.passkeys, Data: data,
	}
	if err := u.pages.Render(w, status, name, "base", p); err != nil {
		u.logger.Error("web ui: render", "page", name, "error", err)
	}
}

func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	u.render(w, r, status, "error", title, msg)
}

// message is what a person sees for a domain error, and its status.
// Unexpected errors are logged and shown as a generic failure.
func (u *UI) message(err error) (int, string) {
	switch {
	case errors.Is(err, identity.ErrBadCredentials):
		return http.StatusUnauthorized, "Wrong password or code."
	case errors.Is(err, identity.ErrThrottled):
		return http.StatusTooManyRequests, "Too many failed attempts. Wait a few minutes and try again."
	case errors.Is(err, identity.ErrPolicyDenied):
		return http.StatusForbidden, "Login policy does not allow this."
	case errors.Is(err, identity.ErrForbidden):
		return http.StatusForbidden, "You are not allowed to do that."
	case errors.Is(err, identity.ErrNotFound):
		return http.StatusNotFound, "Not found: it may have been deleted meanwhile."
	case errors.Is(err, identity.ErrConflict):
		return http.StatusConflict, plain(err, identity.ErrConflict)
	case errors.Is(err, identity.ErrInvalid):
		return http.StatusBadRequest, plain(err, identity.ErrInvalid)
	}
	u.logger.Error("web ui: internal error", "error", err)
	return http.StatusInternalServerError, "Something went wrong on the server. Try again."
}

// plain strips the sentinel's "invalid request: " style prefix and
// capitalizes the rest.
func plain(err, sentinel error) string {
	msg := strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
	if msg == "" {
		return sentinel.Error()
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

// fail shows a domain error on an error page.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := u.message(err)
	u.errorPage(w, r, code, http.StatusText(code), msg)
}

// done finishes a form post: the outcome as a flash message, then back to
// the page the form was on (post/redirect/get).
func (u *UI) done(w http.ResponseWriter, r *http.Request, back string, err error, okMsg string) {
	if err != nil {
		_, msg := u.message(err)
		flash(w, true, msg)
	} else {
		flash(w, false, okMsg)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// home sends visitors to their account or to the login page.
func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	id, err := u.session(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	if id == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}
