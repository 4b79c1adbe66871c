package csrf

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/auth"
)

// Defaults for Options. The cookie is a __Host- cookie: the browser keeps
// it only if it is Secure, for "/" and bound to the exact host, so a
// neighbouring subdomain cannot plant one ("cookie tossing").
const (
	DefaultCookieName = "__Host-mc_csrf"
	DefaultFieldName  = "csrf_token"
	DefaultHeaderName = "X-CSRF-Token"
)

// Options names where the token travels and which cookie is the session
// it is bound to.
type Options struct {
	CookieName, FieldName, HeaderName string
	// SessionCookie is the session the token is bound to (default
	// auth.DefaultCookieName): a token minted for one session — or for
	// none, before login — is worthless with another, and a login (a new
	// session) rotates it.
	SessionCookie string
}

// Protector issues and checks tokens.
type Protector struct {
	key    []byte
	opts   Options
	origin *http.CrossOriginProtection
}

// New returns a Protector signing with key (at least 32 bytes of secret).
func New(key []byte, opts Options) (*Protector, error) {
	if len(key) < 32 {
		return nil, errors.New("csrf: key must be at least 32 bytes")
	}
	if opts.CookieName == "" {
		opts.CookieName = DefaultCookieName
	}
	if opts.FieldName == "" {
		opts.FieldName = DefaultFieldName
	}
	if opts.HeaderName == "" {
		opts.HeaderName = DefaultHeaderName
	}
	if opts.SessionCookie == "" {
		opts.SessionCookie = auth.DefaultCookieName
	}
	return &Protector{key: append([]byte(nil), key...), opts: opts, origin: http.NewCrossOriginProtection()}, nil
}

type tokenKey struct{}

// Token returns the token to render into forms for this request (set by
// the middleware).
func Token(r *http.Request) string {
	t, _ := r.Context().Value(tokenKey{}).(string)
	return t
}

// FieldName is the form field the token must be posted in.
func (p *Protector) FieldName() string { return p.opts.FieldName }

// session is the binding of r's session: a digest of the session cookie,
// or of nothing before login.
func (p *Protector) session(r *http.Request) [sha256.Size]byte {
	v := ""
	if c, err := r.Cookie(p.opts.SessionCookie); err == nil {
		v = c.Value
	}
	return sha256.Sum256([]byte(v))
}

// sign makes the token for nonce bound to session:
// nonce.HMAC(key, nonce || session).
func (p *Protector) sign(nonce []byte, session [sha256.Size]byte) string {
	m := hmac.New(sha256.New, p.key)
	m.Write(nonce)
	m.Write(session[:])
	enc := base64.RawURLEncoding
	return enc.EncodeToString(nonce) + "." + enc.EncodeToString(m.Sum(nil))
}

func (p *Protector) mint(session [sha256.Size]byte) (string, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return p.sign(nonce, session), nil
}

// valid reports whether tok is a token this Protector signed for session.
func (p *Protector) valid(tok string, session [sha256.Size]byte) bool {
	n, _, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	nonce, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(nonce) != 32 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(p.sign(nonce, session)), []byte(tok)) == 1
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// Middleware sets the token cookie when absent and rejects unsafe requests
// with 403 when a browser says they come from another origin
// (Sec-Fetch-Site, or Origin against Host: net/http's
// CrossOriginProtection) or when they lack a matching token. The origin
// check alone stops every browser of the last years; the token still
// covers a browser that sends neither header.
func (p *Protector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.origin.Check(r); err != nil {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		session := p.session(r)
		cookieTok := ""
		if c, err := r.Cookie(p.opts.CookieName); err == nil && p.valid(c.Value, session) {
			cookieTok = c.Value
		}
		if !safeMethod(r.Method) {
			sent := r.Header.Get(p.opts.HeaderName)
			if sent == "" {
				sent = r.PostFormValue(p.opts.FieldName)
			}
			if cookieTok == "" || sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(cookieTok)) != 1 {
				http.Error(w, "invalid or missing CSRF token; reload the page and try again", http.StatusForbidden)
				return
			}
		}
		if cookieTok == "" {
			tok, err := p.mint(session)
			if err != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			cookieTok = tok
			http.SetCookie(w, &http.Cookie{
				Name: p.opts.CookieName, Value: tok, Path: "/",
				HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
			})
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, cookieTok)))
	})
}
