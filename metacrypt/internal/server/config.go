package server

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/logging"
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
	for _, d := range []struct {
		name string
		v    *config.Duration
		def  time.Duration
		min  time.Duration
	}{
		{"pki.crl_lifetime", &c.PKI.CRLLifetime, ca.DefaultCRLLifetime, time.Hour},
		{"pki.ocsp_lifetime", &c.PKI.OCSPLifetime, ca.DefaultOCSPLifetime, time.Minute},
		{"pki.refresh_interval", &c.PKI.RefreshInterval, time.Minute, time.Second},
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
