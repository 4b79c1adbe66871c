package tester

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	mcatweb "git.metacircular.net/metacircular/mcat/web"
	"git.metacircular.net/metacircular/mcdsl/csrf"
	"git.metacircular.net/metacircular/mcdsl/metrics"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/web"
)

// maxForm bounds a posted form.
const maxForm = 64 << 10

// Form is what the page echoes back into its fields: never the password
// or the TOTP code.
type Form struct {
	Username, ServiceName, Tags string
}

// page is the template data.
type page struct {
	CSRF   string
	Form   Form
	Result *Result
	Error  string
}

// NewHandler serves MCAT's one page: GET / shows the form (service_name
// and tags start from the [mcias] defaults), POST / runs a test and shows
// the outcome. Every mutating request needs the CSRF token; the CSRF key
// is random per process, so a restart only asks users to reload. Health
// and metrics are the service runtime's (Build).
func NewHandler(t *Tester, defaults Form, logger *slog.Logger) (http.Handler, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r, err := web.NewRenderer(mcatweb.FS, "templates/*.html", "templates/pages/*.html", nil)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("csrf key: %w", err)
	}
	protect, err := csrf.New(key, csrf.Options{})
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(mcatweb.FS, "static")
	if err != nil {
		return nil, err
	}
	h := &handler{t: t, r: r, defaults: defaults, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.show)
	mux.HandleFunc("POST /{$}", h.try)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	return limitBody(protect.Middleware(routeNames(mux))), nil
}

// routeNames names each request's route for the request metrics by the
// pattern mux matched ("GET /{$}", "POST /{$}", "GET /static/").
func routeNames(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		metrics.SetRoute(r.Context(), r.Pattern)
	})
}

// DefaultsFrom turns the [mcias] section into the form's initial values.
func DefaultsFrom(c Config) Form {
	return Form{ServiceName: c.MCIAS.ServiceName, Tags: strings.Join(c.MCIAS.Tags, ", ")}
}

// limitBody bounds request bodies before anything (the CSRF check
// included) parses them.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		next.ServeHTTP(w, r)
	})
}

type handler struct {
	t        *Tester
	r        *web.Renderer
	defaults Form
	logger   *slog.Logger
}

func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, p page) {
	p.CSRF = csrf.Token(r)
	w.Header().Set("Cache-Control", "no-store")
	if err := h.r.Render(w, status, "index", "layout", p); err != nil {
		h.logger.Error("render", "error", err)
	}
}

func (h *handler) show(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, page{Form: h.defaults})
}

func (h *handler) try(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		h.render(w, r, http.StatusBadRequest, page{Form: h.defaults, Error: "The form could not be read."})
		return
	}
	f := Form{
		Username:    strings.TrimSpace(r.PostForm.Get("username")),
		ServiceName: strings.TrimSpace(r.PostForm.Get("service_name")),
		Tags:        r.PostForm.Get("tags"),
	}
	res, err := h.t.Try(r.Context(), Attempt{
		Username: f.Username, Password: r.PostForm.Get("password"), TOTPCode: strings.TrimSpace(r.PostForm.Get("totp_code")),
		ServiceName: f.ServiceName, Tags: splitTags(f.Tags),
	})
	switch {
	case errors.Is(err, ErrInvalid):
		h.render(w, r, http.StatusUnprocessableEntity, page{Form: f, Error: err.Error()})
		return
	case err != nil:
		h.logger.Error("test login", "error", err)
		h.render(w, r, http.StatusInternalServerError, page{Form: f, Error: "MCAT failed to run the test."})
		return
	}
	h.render(w, r, http.StatusOK, page{Form: f, Result: &res})
}

// splitTags reads the comma-separated tags field.
func splitTags(s string) []string {
	var tags []string
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// Build constructs MCAT on rt without binding anything: the Tester for
// [mcias] and its page on the [server] listener, which the runtime wraps
// with request metrics, GET /v1/health and GET /metrics (on
// server.metrics_addr instead when that is set). MCAT keeps no state.
func Build(_ context.Context, cfg *Config, rt *service.Runtime) error {
	t, err := New(cfg.MCIAS, rt.Logger)
	if err != nil {
		return err
	}
	h, err := NewHandler(t, DefaultsFrom(*cfg), rt.Logger)
	if err != nil {
		return err
	}
	rt.Logger.Info("testing logins against MCIAS", "mcias", cfg.MCIAS.ServerURL)
	return rt.HTTP(cfg.Server, h)
}
