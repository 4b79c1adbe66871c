package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"google.golang.org/grpc/metadata"
)

type identityKey struct{}

// WithIdentity returns a context carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the caller's identity, if the request was authenticated.
func IdentityFrom(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}

// DefaultCookieName is the web session cookie holding an MCIAS token.
// It is a __Host- cookie: Secure, for "/", bound to the exact host.
const DefaultCookieName = "__Host-mc_session"

// BearerToken extracts the token from "Authorization: Bearer <token>".
func BearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// TokenFromRequest takes the bearer header first, then the session cookie.
func TokenFromRequest(r *http.Request, cookieName string) (string, bool) {
	if tok, ok := BearerToken(r.Header.Get("Authorization")); ok {
		return tok, true
	}
	if cookieName == "" {
		cookieName = DefaultCookieName
	}
	if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
		return c.Value, true
	}
	return "", false
}

// TokenFromGRPC extracts the bearer token from incoming gRPC metadata.
func TokenFromGRPC(ctx context.Context) (string, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return "", false
	}
	for _, v := range md.Get("authorization") {
		if tok, ok := BearerToken(v); ok {
			return tok, true
		}
	}
	return "", false
}

// MiddlewareOptions selects what the middleware demands.
type MiddlewareOptions struct {
	// CookieName is the session cookie consulted when there is no bearer
	// header (default DefaultCookieName).
	CookieName string
	// Admin requires the admin role.
	Admin bool
	// BearerOnly ignores the session cookie. Use it for JSON APIs that have
	// no CSRF protection, so a browser's ambient cookie cannot act there.
	BearerOnly bool
}

// Middleware authenticates every request with v and puts the identity in the
// request context. Missing or invalid tokens get 401, non-admins 403 when
// Admin is set, and an unreachable MCIAS 503, each as {"error": "..."}.
func Middleware(v Validator, opts MiddlewareOptions) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := TokenFromRequest(r, opts.CookieName)
			if opts.BearerOnly {
				tok, ok = BearerToken(r.Header.Get("Authorization"))
			}
			if !ok {
				writeError(w, http.StatusUnauthorized, "authentication required")
				return
			}
			id, err := v.ValidateToken(r.Context(), tok)
			if err != nil {
				code := StatusCode(err)
				msg := ErrInvalidToken.Error()
				if code == http.StatusServiceUnavailable {
					msg = ErrUnavailable.Error()
				}
				writeError(w, code, msg)
				return
			}
			if opts.Admin && !id.IsAdmin() {
				writeError(w, http.StatusForbidden, "admin role required")
				return
			}
			next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
		})
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcias"`)
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
