package tester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
)

// Outcome is what MCIAS decided about one login.
type Outcome string

// The outcomes MCAT reports; exactly one per attempt.
const (
	Allowed        Outcome = "allowed"
	Denied         Outcome = "denied"
	BadCredentials Outcome = "bad_credentials"
	TOTPRequired   Outcome = "totp_required"
	Throttled      Outcome = "throttled"
	Unavailable    Outcome = "unavailable"
)

// Attempt is one login to submit.
type Attempt struct {
	Username, Password, TOTPCode string
	ServiceName                  string
	Tags                         []string
}

// Result is MCIAS's answer. The account fields are set for Allowed only,
// from validating the issued token; the token itself is never kept.
type Result struct {
	Outcome     Outcome
	Username    string
	AccountType string
	Roles       []string
	ExpiresAt   time.Time
}

// ErrInvalid marks input MCAT refuses before asking MCIAS.
var ErrInvalid = errors.New("invalid input")

// The limits MCIAS applies to a login, checked here so that a typo is a
// form error and not an "MCIAS unavailable" (MCIAS answers 400).
var (
	serviceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	tagRe         = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,127}$`)
)

const maxTags = 32

func validateTarget(serviceName string, tags []string) error {
	if serviceName != "" && !serviceNameRe.MatchString(serviceName) {
		return fmt.Errorf("%w: service_name %q: expected 1-64 of a-z 0-9 . _ - starting with a letter or digit", ErrInvalid, serviceName)
	}
	if len(tags) > maxTags {
		return fmt.Errorf("%w: at most %d tags", ErrInvalid, maxTags)
	}
	for _, t := range tags {
		if !tagRe.MatchString(t) {
			return fmt.Errorf("%w: tag %q: expected letters, digits and _ . : = / -", ErrInvalid, t)
		}
	}
	return nil
}

func (a Attempt) validate() error {
	if a.Username == "" || len(a.Username) > 64 {
		return fmt.Errorf("%w: username is required (at most 64 bytes)", ErrInvalid)
	}
	if a.Password == "" || len(a.Password) > 1024 {
		return fmt.Errorf("%w: password is required (at most 1024 bytes)", ErrInvalid)
	}
	if len(a.TOTPCode) > 64 {
		return fmt.Errorf("%w: TOTP code is too long", ErrInvalid)
	}
	return validateTarget(a.ServiceName, a.Tags)
}

// Tester submits logins to one MCIAS.
type Tester struct {
	mcias  config.MCIAS
	http   *http.Client
	logger *slog.Logger
}

// New returns a Tester for the MCIAS at cfg.ServerURL, trusting cfg.CACert
// (the system roots when empty). One HTTP client is shared by all tests.
func New(cfg config.MCIAS, logger *slog.Logger) (*Tester, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tlsCfg, err := tlsutil.ClientConfig(cfg.CACert)
	if err != nil {
		return nil, fmt.Errorf("mcias client: %w", err)
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
	}
	return &Tester{mcias: cfg, http: &http.Client{Transport: tr, Timeout: 15 * time.Second}, logger: logger}, nil
}

// Try submits a and reports MCIAS's decision. The error is for input MCAT
// refuses (ErrInvalid); every answer of MCIAS, or its absence, is a Result.
func (t *Tester) Try(ctx context.Context, a Attempt) (Result, error) {
	if err := a.validate(); err != nil {
		return Result{}, err
	}
	// A client per attempt carries the chosen service_name and tags; the
	// HTTP client underneath is shared.
	c, err := auth.New(config.MCIAS{
		ServerURL: t.mcias.ServerURL, CACert: t.mcias.CACert, ServiceName: a.ServiceName, Tags: a.Tags,
	}, auth.Options{HTTPClient: t.http})
	if err != nil {
		return Result{}, err
	}
	tok, err := c.Login(ctx, a.Username, a.Password, a.TOTPCode)
	if err != nil {
		res := Result{Outcome: outcomeOf(err)}
		if res.Outcome == Unavailable {
			t.logger.Warn("mcias login failed", "error", err)
		}
		t.logger.Info("login tested", "username", a.Username, "service_name", a.ServiceName, "tags", a.Tags, "outcome", res.Outcome)
		return res, nil
	}
	defer t.revoke(tok.Token)
	id, err := c.ValidateToken(ctx, tok.Token)
	if err != nil {
		t.logger.Warn("mcias validate failed after a successful login", "error", err)
		return Result{Outcome: Unavailable}, nil
	}
	t.logger.Info("login tested", "username", a.Username, "service_name", a.ServiceName, "tags", a.Tags, "outcome", Allowed)
	return Result{Outcome: Allowed, Username: id.Username, AccountType: id.AccountType, Roles: id.Roles, ExpiresAt: id.ExpiresAt}, nil
}

func outcomeOf(err error) Outcome {
	switch {
	case errors.Is(err, auth.ErrTOTPRequired):
		return TOTPRequired
	case errors.Is(err, auth.ErrBadCredentials):
		return BadCredentials
	case errors.Is(err, auth.ErrPolicyDenied):
		return Denied
	case errors.Is(err, auth.ErrThrottled):
		return Throttled
	}
	return Unavailable
}

// revoke logs out a token MCAT obtained only to report on it, so test
// logins leave no usable credential behind.
func (t *Tester) revoke(tok string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := strings.TrimRight(t.mcias.ServerURL, "/") + "/v1/auth/logout"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		t.logger.Warn("revoke test token", "error", err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := t.http.Do(req) //nolint:gosec // the operator-configured MCIAS URL
	if err != nil {
		t.logger.Warn("revoke test token", "error", err)
		return
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.logger.Warn("revoke test token", "status", resp.StatusCode)
	}
}
