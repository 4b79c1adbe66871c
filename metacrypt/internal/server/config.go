package server

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/metacrypt/internal/acme"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/ca"
	"git.metacircular.net/metacircular/metacrypt/internal/seal"
)

// ServiceName is Metacrypt's name for config env overrides
// (METACRYPT_SECTION_KEY), health and snapshots.
const ServiceName = "metacrypt"

// Config is metacrypt.toml.
type Config struct {
	Server   config.Server   `toml:"server"`
	Database config.Database `toml:"database"`
	MCIAS    config.MCIAS    `toml:"mcias"`
	Log      logging.Config  `toml:"log"`
	Seal     SealConfig      `toml:"seal"`
	PKI      PKIConfig       `toml:"pki"`
	ACME     ACMEConfig      `toml:"acme"`
	Web      WebConfig       `toml:"web"`
}

// SealConfig is the [seal] section: the Argon2id cost of deriving the
// key-encryption key from the unseal password.
type SealConfig struct {
	// Argon2MemoryKiB is the memory cost in KiB (default 65536).
	Argon2MemoryKiB uint32 `toml:"argon2_memory_kib"`
	// Argon2Iterations is the time cost (default 3).
	Argon2Iterations uint32 `toml:"argon2_iterations"`
	// Argon2Parallelism is the number of lanes (default 4).
	Argon2Parallelism uint8 `toml:"argon2_parallelism"`
}

// Params are the section's Argon2id parameters.
func (s SealConfig) Params() seal.Params {
	return seal.Params{MemoryKiB: s.Argon2MemoryKiB, Iterations: s.Argon2Iterations, Parallelism: s.Argon2Parallelism}
}

// PKIConfig is the [pki] section.
type PKIConfig struct {
	// ExternalURL is where the public CA endpoints are reachable from
	// certificate users ("http://pki.metacircular.net"); issued
	// certificates carry CRL, OCSP and CA issuers URLs under it. Empty:
	// certificates carry no such URLs.
	ExternalURL string `toml:"external_url"`
	// ListenAddr, when set, serves the public CA endpoints (and only
	// them) over plain HTTP, as CRL and OCSP clients expect.
	ListenAddr string `toml:"listen_addr"`
	// CRLLifetime is each CRL's validity (default 72h); it is rebuilt
	// when half has passed and on every revocation.
	CRLLifetime config.Duration `toml:"crl_lifetime"`
	// OCSPLifetime is each OCSP response's validity (default 1h).
	OCSPLifetime config.Duration `toml:"ocsp_lifetime"`
	// RefreshInterval is how often stale CRLs are looked for (default 1m).
	RefreshInterval config.Duration `toml:"refresh_interval"`
}

// ACMEConfig is the [acme] section: the ACME server's validations and
// lifetimes.
type ACMEConfig struct {
	// Resolvers are the DNS servers ("host:port", e.g. MCNS) that
	// validations resolve names and read dns-01 TXT records through,
	// tried in order; empty: the system's resolver.
	Resolvers []string `toml:"resolvers"`
	// HTTP01Port is where http-01 validations connect (default 80).
	HTTP01Port int `toml:"http01_port"`
	// TLSALPN01Port is where tls-alpn-01 validations connect (default
	// 443).
	TLSALPN01Port int `toml:"tls_alpn01_port"`
	// OrderLifetime is how long an order may take until finalization
	// (default 24h).
	OrderLifetime config.Duration `toml:"order_lifetime"`
	// ValidationAttempts bounds the attempts per challenge (default 5).
	ValidationAttempts int `toml:"validation_attempts"`
	// ValidationBackoff is the wait before the second attempt, growing by
	// as much per further attempt (default 5s).
	ValidationBackoff config.Duration `toml:"validation_backoff"`
	// ValidationTimeout bounds one attempt (default 10s).
	ValidationTimeout config.Duration `toml:"validation_timeout"`
}

// WebConfig is the [web] section: the browser UI on server.listen_addr,
// signed in through MCIAS single sign-on.
type WebConfig struct {
	// Enabled serves the UI on every path of the HTTPS listener outside
	// /v1/.
	Enabled bool `toml:"enabled"`
	// SSOClientID and SSORedirectURI are Metacrypt's registration in
	// MCIAS ([[sso_clients]]); the redirect URI is
	// https://<Metacrypt as browsers reach it>/sso/callback.
	SSOClientID    string `toml:"sso_client_id"`
	SSORedirectURI string `toml:"sso_redirect_uri"`
	// SSOMCIASURL is MCIAS as browsers reach it (default
	// mcias.server_url).
	SSOMCIASURL string `toml:"sso_mcias_url"`
}

// webCallbackPath is where the UI takes MCIAS's redirect back.
const webCallbackPath = "/sso/callback"

// validate checks [web] when the UI is enabled and fills its default.
func (w *WebConfig) validate(mciasURL string) error {
	if !w.Enabled {
		return nil
	}
	if w.SSOClientID == "" {
		return errors.New("web.sso_client_id is required when web.enabled (the client_id of Metacrypt's [[sso_clients]] entry in MCIAS)")
	}
	u, err := url.Parse(w.SSORedirectURI)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != webCallbackPath || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("web.sso_redirect_uri must be https://<host[:port]>%s (as registered in MCIAS), got %q", webCallbackPath, w.SSORedirectURI)
	}
	if w.SSOMCIASURL == "" {
		w.SSOMCIASURL = mciasURL
	}
	u, err = url.Parse(w.SSOMCIASURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("web.sso_mcias_url must be MCIAS's https:// URL as browsers reach it, got %q", w.SSOMCIASURL)
	}
	return nil
}

// LoadConfig reads and validates metacrypt.toml.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.Load(path, ServiceName, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the sections config.Load does not check itself and
// fills defaults; config.Load names the file in its error.
func (c *Config) Validate() error {
	p := c.Seal.Params().WithDefaults()
	if err := p.Validate(); err != nil {
		return fmt.Errorf("seal.%w", err)
	}
	c.Seal = SealConfig{Argon2MemoryKiB: p.MemoryKiB, Argon2Iterations: p.Iterations, Argon2Parallelism: p.Parallelism}
	if c.PKI.ExternalURL != "" {
		u, err := url.Parse(c.PKI.ExternalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return errors.New("pki.external_url must be an http:// or https:// base URL without a path, e.g. http://pki.metacircular.net")
		}
	}
	if err := c.ACME.validate(); err != nil {
		return err
	}
	if err := c.Web.validate(c.MCIAS.ServerURL); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    *config.Duration
		def  time.Duration
		min  time.Duration
	}{
		{"pki.crl_lifetime", &c.PKI.CRLLifetime, ca.DefaultCRLLifetime, time.Hour},
		{"pki.ocsp_lifetime", &c.PKI.OCSPLifetime, ca.DefaultOCSPLifetime, time.Minute},
		{"pki.refresh_interval", &c.PKI.RefreshInterval, time.Minute, time.Second},
		{"acme.order_lifetime", &c.ACME.OrderLifetime, acme.DefaultOrderLifetime, time.Minute},
		{"acme.validation_backoff", &c.ACME.ValidationBackoff, acme.DefaultValidationBackoff, 100 * time.Millisecond},
		{"acme.validation_timeout", &c.ACME.ValidationTimeout, acme.DefaultValidationTimeout, time.Second},
	} {
		if d.v.Duration == 0 {
			d.v.Duration = d.def
		}
		if d.v.Duration < d.min {
			return fmt.Errorf("%s must be at least %s, got %s", d.name, d.min, d.v.Duration)
		}
	}
	return nil
}

// validate checks and defaults [acme]'s ports, resolvers and attempts.
func (a *ACMEConfig) validate() error {
	for _, p := range []struct {
		name string
		v    *int
		def  int
	}{{"acme.http01_port", &a.HTTP01Port, 80}, {"acme.tls_alpn01_port", &a.TLSALPN01Port, 443}} {
		if *p.v == 0 {
			*p.v = p.def
		}
		if *p.v < 1 || *p.v > 65535 {
			return fmt.Errorf("%s must be a port (1-65535), got %d", p.name, *p.v)
		}
	}
	for i, r := range a.Resolvers {
		if _, err := netip.ParseAddrPort(r); err != nil {
			return fmt.Errorf("acme.resolvers[%d] must be ip:port (e.g. 127.0.0.1:53), got %q", i, r)
		}
	}
	if a.ValidationAttempts == 0 {
		a.ValidationAttempts = acme.DefaultValidationAttempts
	}
	if a.ValidationAttempts < 1 || a.ValidationAttempts > 20 {
		return fmt.Errorf("acme.validation_attempts must be 1-20, got %d", a.ValidationAttempts)
	}
	return nil
}
