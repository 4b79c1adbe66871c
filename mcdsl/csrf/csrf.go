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
)

// Defaults for Options.
const (
	DefaultCookieName = "mc_csrf"
	DefaultFieldName  = "csrf_token"
	DefaultHeaderName = "X-CSRF-Token"
)

// Options names where the token travels.
type Options struct {
	CookieName, FieldName, HeaderName string
	// Path scopes the cookie (default "/").
	Path string
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
	if opts.Path == "" {
		opts.Path = "/"
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

func (p *Protector) sign(nonce []byte) string {
	m := hmac.New(sha256.New, p.key)
	m.Write(nonce)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(nonce) + "." + enc.EncodeToString(m.Sum(nil))
}

func (p *Protector) mint() (string, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return p.sign(nonce), nil
}

// valid reports whether tok is a token this Protector signed.
func (p *Protector) valid(tok string) bool {
	n, _, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	nonce, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(nonce) != 32 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(p.sign(nonce)), []byte(tok)) == 1
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
		cookieTok := ""
		if c, err := r.Cookie(p.opts.CookieName); err == nil && p.valid(c.Value) {
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
			tok, err := p.mint()
			if err != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			cookieTok = tok
			http.SetCookie(w, &http.Cookie{
				Name: p.opts.CookieName, Value: tok, Path: p.opts.Path,
				HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
			})
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, cookieTok)))
	})
}
