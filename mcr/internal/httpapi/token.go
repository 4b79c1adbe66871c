package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcr/internal/access"
	"git.metacircular.net/metacircular/mcr/internal/oci"
	"git.metacircular.net/metacircular/mcr/internal/tokenauth"
)

// maxTokenForm bounds a POST to the token endpoint.
const maxTokenForm = 64 << 10

// tokenResponse is the token endpoint's answer: token and access_token
// carry the same JWT (Docker clients read the first, OAuth2 clients the
// second).
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// tokenFail answers the token endpoint's errors in the spec's JSON form.
func tokenFail(w http.ResponseWriter, e *oci.Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcr"`)
	}
	oci.Write(w, e)
}

// loginError maps an MCIAS answer to the token endpoint's.
func loginError(err error) *oci.Error {
	switch {
	case errors.Is(err, auth.ErrTOTPRequired):
		return oci.NewError(oci.ErrUnauthorized, "this account needs a TOTP code: log in to MCIAS and use the token as the password")
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrInvalidToken):
		return oci.NewError(oci.ErrUnauthorized, "bad credentials")
	case errors.Is(err, auth.ErrPolicyDenied):
		return oci.NewError(oci.ErrDenied, "login denied by MCIAS policy")
	case errors.Is(err, auth.ErrThrottled):
		return oci.NewError(oci.ErrTooManyRequests, "too many login attempts")
	}
	return oci.NewError(oci.ErrUnknown, "identity service unavailable").WithStatus(http.StatusServiceUnavailable)
}

// identity is who the credentials name, with the MCIAS token behind them.
type identity struct {
	id    *auth.Identity
	mcias string
}

// login checks a username and password at MCIAS. A password that is an
// MCIAS token is validated instead, and must belong to username.
func (h *Handler) login(ctx context.Context, user, pass string) (identity, error) {
	if tokenauth.LooksLikeJWT(pass) {
		id, err := h.d.Auth.ValidateToken(ctx, pass)
		if err != nil {
			return identity{}, err
		}
		if user != "" && !strings.EqualFold(user, id.Username) {
			return identity{}, auth.ErrBadCredentials
		}
		return identity{id: id, mcias: pass}, nil
	}
	tok, err := h.d.Auth.Login(ctx, user, pass, "")
	if err != nil {
		return identity{}, err
	}
	id, err := h.d.Auth.ValidateToken(ctx, tok.Token)
	if err != nil {
		return identity{}, err
	}
	return identity{id: id, mcias: tok.Token}, nil
}

// token is GET /v2/token (Docker: Basic credentials or none, scope and
// service parameters) and POST /v2/token (OAuth2 form: grant_type
// password or refresh_token).
func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	var (
		scopes  []string
		service string
		who     identity
		anon    bool
		refresh bool
		err     error
	)
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		scopes, service = q["scope"], q.Get("service")
		if user, pass, ok := r.BasicAuth(); ok {
			who, err = h.login(r.Context(), user, pass)
		} else {
			anon = true
		}
		refresh = q.Get("offline_token") == "true"
	case http.MethodPost:
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/x-www-form-urlencoded" {
			tokenFail(w, oci.NewError(oci.ErrUnsupported, "POST a form (application/x-www-form-urlencoded)").WithStatus(http.StatusUnsupportedMediaType))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if perr := r.ParseForm(); perr != nil {
			tokenFail(w, oci.NewError(oci.ErrUnsupported, "bad form").WithStatus(http.StatusBadRequest))
			return
		}
		f := r.PostForm
		scopes, service = f["scope"], f.Get("service")
		switch f.Get("grant_type") {
		case "password":
			who, err = h.login(r.Context(), f.Get("username"), f.Get("password"))
			refresh = f.Get("access_type") == "offline"
		case "refresh_token":
			var id *auth.Identity
			id, err = h.d.Auth.ValidateToken(r.Context(), f.Get("refresh_token"))
			who = identity{id: id, mcias: f.Get("refresh_token")}
			refresh = true
		default:
			tokenFail(w, oci.NewError(oci.ErrUnsupported, "grant_type must be password or refresh_token").WithStatus(http.StatusBadRequest))
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenFail(w, oci.NewError(oci.ErrUnsupported, "method "+r.Method+" not allowed here"))
		return
	}
	if err != nil {
		h.d.Logger.Info("token refused", "remote", r.RemoteAddr, "reason", err.Error())
		tokenFail(w, loginError(err))
		return
	}
	if service != "" && service != h.d.Issuer.Service() {
		tokenFail(w, oci.NewError(oci.ErrUnsupported, "unknown service "+service).WithStatus(http.StatusBadRequest))
		return
	}
	wants, err := oci.ParseScopes(scopes)
	if err != nil {
		tokenFail(w, oci.NewError(oci.ErrUnsupported, err.Error()).WithStatus(http.StatusBadRequest))
		return
	}
	p, subject := access.Anonymous, ""
	if !anon {
		p = access.Principal{Username: who.id.Username, AccountType: who.id.AccountType, Roles: who.id.Roles}
		subject = who.id.Subject
	}
	granted := h.grant(p, wants)
	tok, issued, err := h.d.Issuer.Issue(subject, p, granted)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	parts := make([]string, 0, len(granted))
	for _, g := range granted {
		parts = append(parts, g.String())
	}
	resp := tokenResponse{
		Token: tok, AccessToken: tok, ExpiresIn: int(h.d.Issuer.TTL() / time.Second),
		IssuedAt: issued.Format(time.RFC3339), Scope: strings.Join(parts, " "),
	}
	if refresh && !anon {
		resp.RefreshToken = who.mcias
	}
	b, _ := json.Marshal(resp) //nolint:gosec // the token endpoint answers with a token by definition
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// grant narrows each wanted access to what the policy allows p; accesses
// that end up empty are left out.
func (h *Handler) grant(p access.Principal, wants []oci.Access) []oci.Access {
	pol := h.d.Policy()
	var out []oci.Access
	for _, want := range wants {
		var acts []string
		switch want.Type {
		case oci.ResourceRegistry:
			if pol.CanCatalog(p) {
				acts = []string{"*"}
			}
		case oci.ResourceRepository:
			allowed := pol.Allowed(p, want.Name)
			for _, a := range want.Actions {
				if a == "*" {
					acts = append(acts, allowed...)
				} else if slices.Contains(allowed, a) {
					acts = append(acts, a)
				}
			}
			slices.Sort(acts)
			acts = slices.Compact(acts)
		}
		if len(acts) > 0 {
			out = append(out, oci.Access{Type: want.Type, Name: want.Name, Actions: acts})
		}
	}
	return out
}
