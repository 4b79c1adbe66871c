// Package httpapi is the OCI distribution API (/v2/...) and the Docker
// token endpoint (/v2/token). The distribution API is not an RPC, so it
// is written by hand here: one handler per route, the access each needs
// derived from the route and the method, errors in the spec's JSON form.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/metrics"
	"git.metacircular.net/metacircular/mcr/internal/access"
	"git.metacircular.net/metacircular/mcr/internal/blob"
	"git.metacircular.net/metacircular/mcr/internal/meta"
	"git.metacircular.net/metacircular/mcr/internal/oci"
	"git.metacircular.net/metacircular/mcr/internal/tokenauth"
	"git.metacircular.net/metacircular/mcr/internal/upload"
)

// Authenticator is the MCIAS side of the token endpoint (mcdsl/auth.Client).
type Authenticator interface {
	Login(ctx context.Context, username, password, totpCode string) (auth.Token, error)
	ValidateToken(ctx context.Context, token string) (*auth.Identity, error)
}

// Deps are what the API needs.
type Deps struct {
	Store   *meta.Store
	Blobs   *blob.Store
	Uploads *upload.Service
	Issuer  *tokenauth.Issuer
	// Policy returns the rules in force.
	Policy func() *access.Policy
	Auth   Authenticator
	// PublicURL is the registry's external base URL
	// (https://mcr.example); empty derives it from each request's Host.
	PublicURL string
	// AllowSparse accepts manifests that reference content the
	// repository lacks.
	AllowSparse bool
	Logger      *slog.Logger
}

// Handler serves /v2/.
type Handler struct {
	d Deps
}

// New returns the distribution API handler.
func New(d Deps) *Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{d: d}
}

// route is a parsed /v2/ path.
type route struct {
	kind string // base, catalog, token, blob, uploads, upload, manifest, tags, referrers
	name oci.Name
	arg  string
}

var routeREs = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"manifest", regexp.MustCompile(`^(.+)/manifests/([^/]+)$`)},
	{"uploads", regexp.MustCompile(`^(.+)/blobs/uploads/?$`)},
	{"upload", regexp.MustCompile(`^(.+)/blobs/uploads/([^/]+)$`)},
	{"blob", regexp.MustCompile(`^(.+)/blobs/([^/]+)$`)},
	{"tags", regexp.MustCompile(`^(.+)/tags/list$`)},
	{"referrers", regexp.MustCompile(`^(.+)/referrers/([^/]+)$`)},
}

// parseRoute maps a path under /v2/ to a route; ok is false for a path
// that is no endpoint.
func parseRoute(p string) (route, *oci.Error, bool) {
	rest := strings.TrimPrefix(p, "/v2/")
	switch rest {
	case "":
		return route{kind: "base"}, nil, true
	case "_catalog":
		return route{kind: "catalog"}, nil, true
	case "token":
		return route{kind: "token"}, nil, true
	}
	for _, r := range routeREs {
		m := r.re.FindStringSubmatch(rest)
		if m == nil {
			continue
		}
		name, err := oci.ParseName(m[1])
		if err != nil {
			e, _ := oci.AsError(err)
			return route{}, e, true
		}
		rt := route{kind: r.kind, name: name}
		if len(m) > 2 {
			rt.arg = m[2]
		}
		return rt, nil, true
	}
	return route{}, nil, false
}

// ServeHTTP routes a /v2/ request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, perr, ok := parseRoute(r.URL.Path)
	if !ok {
		metrics.SetRoute(r.Context(), "/v2/unknown")
		oci.Write(w, oci.NewError(oci.ErrUnsupported, "no such endpoint").WithStatus(http.StatusNotFound))
		return
	}
	metrics.SetRoute(r.Context(), "/v2/"+rt.kind)
	if perr != nil {
		oci.Write(w, perr)
		return
	}
	if rt.kind == "token" {
		h.token(w, r)
		return
	}
	handler, wants := h.dispatch(rt, r.Method)
	if handler == nil {
		w.Header().Set("Allow", allowed(rt.kind))
		oci.Write(w, oci.NewError(oci.ErrUnsupported, "method "+r.Method+" not allowed here"))
		return
	}
	caller, ok := h.authorize(w, r, rt, wants)
	if !ok {
		return
	}
	handler(w, r.WithContext(withCaller(r.Context(), caller)), rt)
}

type handlerFunc func(http.ResponseWriter, *http.Request, route)

// dispatch picks the handler for a route and method and the access it
// needs: GET and HEAD pull; POST, PUT and PATCH push (and pull); DELETE
// of content deletes, of an upload pushes.
func (h *Handler) dispatch(rt route, method string) (handlerFunc, []oci.Access) {
	repo := func(actions ...string) []oci.Access {
		return []oci.Access{{Type: oci.ResourceRepository, Name: rt.name.String(), Actions: actions}}
	}
	pull, push, del := repo(oci.ActionPull), repo(oci.ActionPull, oci.ActionPush), repo(oci.ActionDelete)
	get := method == http.MethodGet || method == http.MethodHead
	switch rt.kind {
	case "base":
		if get {
			return h.base, nil
		}
	case "catalog":
		if get {
			return h.catalog, []oci.Access{{Type: oci.ResourceRegistry, Name: oci.CatalogName, Actions: []string{"*"}}}
		}
	case "blob":
		switch {
		case get:
			return h.getBlob, pull
		case method == http.MethodDelete:
			return h.deleteBlob, del
		}
	case "uploads":
		if method == http.MethodPost {
			return h.startUpload, push
		}
	case "upload":
		switch method {
		case http.MethodGet:
			return h.uploadStatus, push
		case http.MethodPatch:
			return h.patchUpload, push
		case http.MethodPut:
			return h.putUpload, push
		case http.MethodDelete:
			return h.cancelUpload, push
		}
	case "manifest":
		switch {
		case get:
			return h.getManifest, pull
		case method == http.MethodPut:
			return h.putManifest, push
		case method == http.MethodDelete:
			return h.deleteManifest, del
		}
	case "tags":
		if get {
			return h.tags, pull
		}
	case "referrers":
		if get {
			return h.referrers, pull
		}
	}
	return nil, nil
}

func allowed(kind string) string {
	switch kind {
	case "blob", "manifest":
		return "GET, HEAD, PUT, DELETE"
	case "uploads":
		return "POST"
	case "upload":
		return "GET, PATCH, PUT, DELETE"
	}
	return "GET, HEAD"
}

// caller is who is making a request.
type caller struct {
	principal access.Principal
	claims    *tokenauth.Claims // nil for an anonymous caller without a token
}

// actor names the caller in the audit log.
func (c caller) actor() string {
	if c.principal.Username == "" {
		return access.AccountAnonymous
	}
	return c.principal.Username
}

type callerKey struct{}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// realm is the token endpoint's absolute URL.
func (h *Handler) realm(r *http.Request) string {
	base := strings.TrimRight(h.d.PublicURL, "/")
	if base == "" {
		base = "https://" + r.Host
	}
	return base + "/v2/token"
}

// authorize checks the request's token against the access it needs. No
// token: anonymous, if the policy lets anonymous callers do it, else 401
// with a challenge. A bad token: 401. A token without the access: 401
// asking for it when the caller may have it (the client fetches a token
// with that scope), else 403 DENIED.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, rt route, wants []oci.Access) (caller, bool) {
	challenge := func(code string, e *oci.Error) {
		w.Header().Set("WWW-Authenticate", tokenauth.Challenge(h.realm(r), h.d.Issuer.Service(), wants, code))
		oci.Write(w, e)
	}
	raw, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		if rt.kind != "base" && len(wants) > 0 && h.allowsAll(access.Anonymous, wants) {
			return caller{principal: access.Anonymous}, true
		}
		challenge("", oci.NewError(oci.ErrUnauthorized, "authentication required"))
		return caller{}, false
	}
	claims, err := h.d.Issuer.Verify(raw)
	if err != nil {
		challenge("invalid_token", oci.NewError(oci.ErrUnauthorized, "invalid or expired registry token"))
		return caller{}, false
	}
	c := caller{principal: claims.Principal(), claims: claims}
	var missing []oci.Access
	for _, want := range wants {
		for _, a := range want.Actions {
			if !claims.Allows(want.Type, want.Name, a) {
				missing = append(missing, want)
				break
			}
		}
	}
	if len(missing) == 0 {
		return c, true
	}
	if c.principal.AccountType == access.AccountAnonymous {
		// Signing in may grant it: ask for credentials, as for no token.
		challenge("", oci.NewError(oci.ErrUnauthorized, "authentication required"))
		return caller{}, false
	}
	if h.allowsAll(c.principal, missing) {
		challenge("insufficient_scope", oci.NewError(oci.ErrUnauthorized, "the registry token does not cover this request; ask for "+missing[0].String()))
		return caller{}, false
	}
	oci.Write(w, oci.NewError(oci.ErrDenied, "requested access to the resource is denied"))
	return caller{}, false
}

// allowsAll reports whether the policy grants p every action in wants.
func (h *Handler) allowsAll(p access.Principal, wants []oci.Access) bool {
	pol := h.d.Policy()
	for _, want := range wants {
		for _, a := range want.Actions {
			switch {
			case want.Type == oci.ResourceRegistry:
				if !pol.CanCatalog(p) {
					return false
				}
			case !pol.Can(p, want.Name, a):
				return false
			}
		}
	}
	return true
}

// fail answers an error from the domain: spec errors as they are, a full
// disk as 507, anything else as 500 (logged).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := oci.AsError(err); ok {
		oci.Write(w, e)
		return
	}
	if errors.Is(err, upload.ErrStorageFull) {
		h.d.Logger.Error("storage full", "path", r.URL.Path, "error", err)
		oci.Write(w, oci.NewError(oci.ErrUnknown, "insufficient storage").WithStatus(http.StatusInsufficientStorage))
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	h.d.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	oci.Write(w, oci.NewError(oci.ErrUnknown, "internal error"))
}

// audit records an event for the caller.
func (h *Handler) audit(r *http.Request, action string, repo oci.Name, ref, digest, detail string) {
	e := meta.Event{Actor: callerFrom(r.Context()).actor(), Action: action, Repository: repo.String(),
		Reference: ref, Digest: digest, Remote: r.RemoteAddr, Detail: detail}
	if err := h.d.Store.AppendEvent(context.WithoutCancel(r.Context()), e); err != nil {
		h.d.Logger.Error("audit", "action", action, "repository", repo, "error", err)
	}
}

// base answers GET /v2/ for any valid token.
func (h *Handler) base(w http.ResponseWriter, _ *http.Request, _ route) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

// transferIdle is how long a blob transfer may stall before it is cut;
// the server's fixed 30 s read and write timeouts are replaced by this
// rolling deadline so large layers can take as long as they need.
const transferIdle = 60 * time.Second

// deadlineReader extends the connection's read deadline before each read.
type deadlineReader struct {
	r  interface{ Read([]byte) (int, error) }
	rc *http.ResponseController
}

func (d deadlineReader) Read(p []byte) (int, error) {
	// The write deadline moves too: the answer is written after the
	// whole body has been read.
	t := time.Now().Add(transferIdle)
	_ = d.rc.SetReadDeadline(t)
	_ = d.rc.SetWriteDeadline(t)
	return d.r.Read(p)
}

// deadlineWriter extends the connection's write deadline before each
// write.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(transferIdle))
	return d.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (d deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// longBody wraps r's body with rolling read deadlines.
func longBody(w http.ResponseWriter, r *http.Request) deadlineReader {
	return deadlineReader{r: r.Body, rc: http.NewResponseController(w)}
}
