package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
)

// DefaultCacheTTL is how long a validation answer is reused.
const DefaultCacheTTL = 30 * time.Second

// maxCacheEntries bounds the validation cache; past it, expired entries are
// dropped and, if still full, the cache starts over.
const maxCacheEntries = 10000

// Errors returned by Login and ValidateToken; map them with StatusCode.
// They are mcdsl/apierr sentinels, so a handler that returns one answers
// with the right status over REST and gRPC.
var (
	ErrBadCredentials = apierr.New(apierr.Unauthenticated, "bad credentials")
	ErrPolicyDenied   = apierr.Opaque(apierr.Denied, "denied by login policy")
	ErrThrottled      = apierr.Opaque(apierr.Throttled, "too many attempts")
	ErrInvalidToken   = apierr.Opaque(apierr.Unauthenticated, "invalid or expired token")
	ErrUnavailable    = apierr.New(apierr.Unavailable, "identity service unavailable")
	ErrForbidden      = apierr.Opaque(apierr.Denied, "forbidden")

	// ErrTOTPRequired: the password was right but the account needs a
	// TOTP code. It is also ErrBadCredentials, so callers that do not care
	// treat it as such; a login form uses it to ask for the code.
	ErrTOTPRequired = fmt.Errorf("%w: totp code required", ErrBadCredentials)
)

// Roles.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
	RoleGuest = "guest"
)

// Account types.
const (
	AccountHuman  = "human"
	AccountSystem = "system"
)

// Identity is a validated caller.
type Identity struct {
	Subject     string    `json:"subject"`
	Username    string    `json:"username"`
	AccountType string    `json:"account_type"`
	Roles       []string  `json:"roles"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// HasRole reports whether the identity carries role.
func (i *Identity) HasRole(role string) bool { return slices.Contains(i.Roles, role) }

// IsAdmin reports whether the identity is an administrator.
func (i *Identity) IsAdmin() bool { return i.HasRole(RoleAdmin) }

// IsSystem reports whether the identity is a system (service) account.
func (i *Identity) IsSystem() bool { return i.AccountType == AccountSystem }

// Validator validates bearer tokens. *Client implements it; servers depend on
// this interface.
type Validator interface {
	ValidateToken(ctx context.Context, token string) (*Identity, error)
}

// Token is a bearer token and its expiry.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Options tunes a Client.
type Options struct {
	// CacheTTL overrides DefaultCacheTTL.
	CacheTTL time.Duration
	// Now overrides the clock (tests move it past the cache window).
	Now func() time.Time
	// HTTPClient overrides the client built from the config's CA.
	HTTPClient *http.Client
}

// Client talks to MCIAS.
type Client struct {
	base    string
	service string
	tags    []string
	http    *http.Client
	ttl     time.Duration
	now     func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	id    Identity
	until time.Time
}

// New builds a client for the MCIAS at cfg.ServerURL, trusting cfg.CACert
// (or the system roots when empty).
func New(cfg config.MCIAS, opts Options) (*Client, error) {
	if cfg.ServerURL == "" {
		return nil, errors.New("mcias client: server_url is required")
	}
	c := &Client{
		base:    strings.TrimRight(cfg.ServerURL, "/"),
		service: cfg.ServiceName,
		tags:    cfg.Tags,
		http:    opts.HTTPClient,
		ttl:     opts.CacheTTL,
		now:     opts.Now,
		cache:   make(map[[sha256.Size]byte]cacheEntry),
	}
	if c.ttl <= 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.http == nil {
		tlsCfg, err := tlsutil.ClientConfig(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("mcias client: %w", err)
		}
		tr := &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsCfg,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}
		c.http = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	return c, nil
}

type loginRequest struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	TOTPCode    string   `json:"totp_code,omitempty"`
	ServiceName string   `json:"service_name,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

// Login exchanges a username and password (and a TOTP code when the account
// has one) for a token, on behalf of this client's service_name and tags so
// MCIAS can apply its login policy.
func (c *Client) Login(ctx context.Context, username, password, totpCode string) (Token, error) {
	var tok Token
	err := c.post(ctx, "/v1/auth/login", "", loginRequest{
		Username: username, Password: password, TOTPCode: totpCode,
		ServiceName: c.service, Tags: c.tags,
	}, &tok)
	if err != nil {
		return Token{}, fmt.Errorf("login: %w", err)
	}
	if tok.Token == "" {
		return Token{}, fmt.Errorf("login: %w: empty token in answer", ErrUnavailable)
	}
	return tok, nil
}

type validateResponse struct {
	Valid       bool      `json:"valid"`
	Subject     string    `json:"subject"`
	Username    string    `json:"username"`
	AccountType string    `json:"account_type"`
	Roles       []string  `json:"roles"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// ValidateToken asks MCIAS whether token is valid, reusing an earlier answer
// for up to the cache TTL (never past the token's expiry). Only the token's
// SHA-256 is kept.
func (c *Client) ValidateToken(ctx context.Context, token string) (*Identity, error) {
	if token == "" {
		return nil, ErrInvalidToken
	}
	key := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	if e, ok := c.cache[key]; ok {
		if now.Before(e.until) {
			c.mu.Unlock()
			id := e.id
			id.Roles = slices.Clone(e.id.Roles)
			return &id, nil
		}
		delete(c.cache, key)
	}
	c.mu.Unlock()

	var resp validateResponse
	if err := c.post(ctx, "/v1/token/validate", "", map[string]string{"token": token}, &resp); err != nil {
		return nil, fmt.Errorf("validate token: %w", err)
	}
	if !resp.Valid {
		return nil, ErrInvalidToken
	}
	id := Identity{
		Subject: resp.Subject, Username: resp.Username, AccountType: resp.AccountType,
		Roles: resp.Roles, ExpiresAt: resp.ExpiresAt,
	}
	if !id.ExpiresAt.IsZero() && !now.Before(id.ExpiresAt) {
		return nil, ErrInvalidToken
	}
	until := now.Add(c.ttl)
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(until) {
		until = id.ExpiresAt
	}
	c.mu.Lock()
	if len(c.cache) >= maxCacheEntries {
		for k, e := range c.cache {
			if !now.Before(e.until) {
				delete(c.cache, k)
			}
		}
		if len(c.cache) >= maxCacheEntries {
			clear(c.cache)
		}
	}
	c.cache[key] = cacheEntry{id: id, until: until}
	c.mu.Unlock()
	out := id
	out.Roles = slices.Clone(id.Roles)
	return &out, nil
}

// post sends a JSON request and decodes a JSON answer, mapping MCIAS status
// codes to this package's errors.
func (c *Client) post(ctx context.Context, path, bearer string, body, out any) error {
	buf, err := json.Marshal(body)
	if err != nil {
		return err
	}
	// The host comes from the operator's [mcias] server_url, not from a request.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(buf)) //nolint:gosec // see above
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req) //nolint:gosec // fixed, operator-configured MCIAS URL
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: read answer: %w", ErrUnavailable, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		// MCIAS's one distinguishable 401: right password, TOTP missing.
		if ErrorMessage(data) == "totp code required" {
			return ErrTOTPRequired
		}
		return ErrBadCredentials
	case http.StatusForbidden:
		return ErrPolicyDenied
	case http.StatusTooManyRequests:
		return ErrThrottled
	default:
		return fmt.Errorf("%w: %s answered %d: %s", ErrUnavailable, path, resp.StatusCode, ErrorMessage(data))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: decode answer: %w", ErrUnavailable, err)
	}
	return nil
}

// ErrorMessage extracts the message of a platform error body
// ({"error": "..."}, PLATFORM.md §4), or returns a short prefix of whatever
// else came back, for error messages.
func ErrorMessage(data []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	if len(data) > 200 {
		data = data[:200]
	}
	return strings.TrimSpace(string(data))
}

// StatusCode maps this package's errors to the platform's HTTP status codes.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrBadCredentials), errors.Is(err, ErrInvalidToken):
		return http.StatusUnauthorized
	case errors.Is(err, ErrPolicyDenied), errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrThrottled):
		return http.StatusTooManyRequests
	default:
		return http.StatusServiceUnavailable
	}
}
