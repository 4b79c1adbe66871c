package web

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
)

// SetSession stores token in the session cookie until expires.
func SetSession(w http.ResponseWriter, name, token string, expires time.Time) {
	if name == "" {
		name = auth.DefaultCookieName
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: token, Path: "/", Expires: expires,
		MaxAge:   int(time.Until(expires).Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// ClearSession removes the session cookie.
func ClearSession(w http.ResponseWriter, name string) {
	if name == "" {
		name = auth.DefaultCookieName
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(0, 0),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// flashCookie carries one message to the next page view.
const flashCookie = "__Host-mc_flash"

// maxFlash bounds a flash message so the cookie stays small.
const maxFlash = 512

// SetFlash queues a message for the next page the browser loads.
func SetFlash(w http.ResponseWriter, msg string) {
	if len(msg) > maxFlash {
		msg = msg[:maxFlash]
	}
	http.SetCookie(w, &http.Cookie{
		Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)), Path: "/",
		MaxAge: 60, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// PopFlash returns the queued message, if any, and clears it.
func PopFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{
		Name: flashCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > maxFlash {
		return ""
	}
	return string(b)
}

// Renderer renders pages: each page template file is parsed together with
// every layout file, so pages define blocks the layout uses.
type Renderer struct {
	pages map[string]*template.Template
	csp   string
}

// defaultCSP is the Content-Security-Policy of every page: scripts,
// styles and everything else from the page's own origin only, never
// framed, forms posted to the same origin.
const defaultCSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"

// AllowFormActions lets a form submission of these pages end, after
// redirects, at the given origins ("https://host[:port]"), besides the
// page's own. Browsers apply form-action to every redirect that follows a
// form submission: an identity provider whose login form redirects on to
// a registered SSO client's callback must name the client's origin here.
// A value that is not a bare origin (https://host[:port], or http:// for
// a client on loopback) is an error.
func (r *Renderer) AllowFormActions(origins ...string) error {
	csp := defaultCSP
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, " ;,'\"\r\n") {
			return fmt.Errorf("form action %q: expected an origin (https://host[:port])", o)
		}
		csp += " " + u.Scheme + "://" + u.Host
	}
	r.csp = csp
	return nil
}

// NewRenderer parses the layouts matching layoutGlob and each page matching
// pageGlob from fsys (typically an embed.FS). Pages are named by file base
// name without extension.
func NewRenderer(fsys fs.FS, layoutGlob, pageGlob string, funcs template.FuncMap) (*Renderer, error) {
	layouts, err := fs.Glob(fsys, layoutGlob)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	pages, err := fs.Glob(fsys, pageGlob)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if len(pages) == 0 {
		return nil, fmt.Errorf("templates: no pages match %q", pageGlob)
	}
	r := &Renderer{pages: map[string]*template.Template{}, csp: defaultCSP}
	for _, p := range pages {
		name := strings.TrimSuffix(path.Base(p), path.Ext(p))
		t := template.New(path.Base(p)).Funcs(funcs).Option("missingkey=error")
		files := append(append([]string{}, layouts...), p)
		if t, err = t.ParseFS(fsys, files...); err != nil {
			return nil, fmt.Errorf("templates: page %s: %w", p, err)
		}
		r.pages[name] = t
	}
	return r, nil
}

// Render executes page into a buffer first, so a template error produces a
// clean 500 instead of half a page, then writes it with status.
func (r *Renderer) Render(w http.ResponseWriter, status int, page, entry string, data any) error {
	t, ok := r.pages[page]
	if !ok {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return fmt.Errorf("render: no page %q", page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, entry, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return fmt.Errorf("render %s: %w", page, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", r.csp)
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}
