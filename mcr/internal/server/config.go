package server

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/logging"
)

// ServiceName is MCR's name for config env overrides (MCR_SECTION_KEY),
// health and snapshots.
const ServiceName = "mcr"

// Config is mcr.toml.
type Config struct {
	Server   config.Server   `toml:"server"`
	Database config.Database `toml:"database"`
	MCIAS    config.MCIAS    `toml:"mcias"`
	Log      logging.Config  `toml:"log"`
	Registry Registry        `toml:"registry"`
	GC       GC              `toml:"gc"`
	Web      Web             `toml:"web"`
}

// Registry is the [registry] section.
type Registry struct {
	// Storage is the blob store's directory (default: "storage" beside
	// the database).
	Storage string `toml:"storage"`
	// PublicURL is the registry's external base URL, used for the token
	// realm (default: https:// and each request's Host).
	PublicURL string `toml:"public_url"`
	// Service is the token audience and the service clients name in
	// token requests (default: public_url's host, else "mcr").
	Service string `toml:"service"`
	// TokenKey is the Ed25519 key registry tokens are signed with,
	// created on first start (default: token.key beside the database).
	TokenKey string `toml:"token_key"`
	// TokenTTL is a registry token's lifetime (default 5m).
	TokenTTL config.Duration `toml:"token_ttl"`
	// AgentAccounts are system accounts that pull every repository unless
	// a rule denies it (absent: ["mcp-agent"]).
	AgentAccounts []string `toml:"agent_accounts"`
	// AllowSparse accepts manifests that reference blobs or manifests
	// the repository does not have (default false: MANIFEST_BLOB_UNKNOWN).
	AllowSparse bool `toml:"allow_sparse"`
}

// GC is the [gc] section.
type GC struct {
	// Interval between online collections (default 24h).
	Interval config.Duration `toml:"interval"`
	// Disabled turns the schedule off; `mcr gc` and the API still run a
	// collection on demand.
	Disabled bool `toml:"disabled"`
	// Grace protects blobs used (uploaded, mounted, referenced) more
	// recently than this. Default 1h.
	Grace config.Duration `toml:"grace"`
	// UploadTTL: upload sessions idle longer than this are abandoned.
	// Default 24h.
	UploadTTL config.Duration `toml:"upload_ttl"`
}

// Web is the [web] section: the browser UI with MCIAS single sign-on.
type Web struct {
	// Enabled serves the UI on the HTTPS listener.
	Enabled bool `toml:"enabled"`
	// SSOClientID and SSORedirectURI are MCR's registration in MCIAS
	// ([[sso_clients]]); the redirect URI ends in /sso/callback.
	SSOClientID    string `toml:"sso_client_id"`
	SSORedirectURI string `toml:"sso_redirect_uri"`
	// SSOMCIASURL is MCIAS's URL as the browser reaches it (default
	// mcias.server_url).
	SSOMCIASURL string `toml:"sso_mcias_url"`
}

// LoadConfig reads and validates mcr.toml.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.Load(path, ServiceName, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate fills defaults and checks the MCR sections.
func (c *Config) Validate() error {
	dir := filepath.Dir(c.Database.Path)
	r := &c.Registry
	if r.Storage == "" {
		r.Storage = filepath.Join(dir, "storage")
	}
	if r.TokenKey == "" {
		r.TokenKey = filepath.Join(dir, "token.key")
	}
	if r.PublicURL != "" {
		u, err := url.Parse(r.PublicURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("registry.public_url %q: want https://host[:port]", r.PublicURL)
		}
		if r.Service == "" {
			r.Service = u.Hostname()
		}
	}
	if r.Service == "" {
		r.Service = ServiceName
	}
	if r.TokenTTL.Duration == 0 {
		r.TokenTTL.Duration = 5 * time.Minute
	}
	if r.TokenTTL.Duration < time.Minute || r.TokenTTL.Duration > 24*time.Hour {
		return errors.New("registry.token_ttl: want between 1m and 24h")
	}
	if r.AgentAccounts == nil {
		r.AgentAccounts = []string{"mcp-agent"}
	}
	g := &c.GC
	if g.Interval.Duration == 0 {
		g.Interval.Duration = 24 * time.Hour
	}
	if g.Interval.Duration < time.Minute {
		return errors.New("gc.interval: want at least 1m (set gc.disabled to turn the schedule off)")
	}
	if g.Grace.Duration == 0 {
		g.Grace.Duration = time.Hour
	}
	if g.Grace.Duration < 0 {
		return errors.New("gc.grace: must not be negative")
	}
	if g.UploadTTL.Duration == 0 {
		g.UploadTTL.Duration = 24 * time.Hour
	}
	if c.Web.Enabled {
		if c.Web.SSOClientID == "" || c.Web.SSORedirectURI == "" {
			return errors.New("web.sso_client_id and web.sso_redirect_uri are required when web.enabled")
		}
		if c.Web.SSOMCIASURL == "" {
			c.Web.SSOMCIASURL = c.MCIAS.ServerURL
		}
	}
	return nil
}
