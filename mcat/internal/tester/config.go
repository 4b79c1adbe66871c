package tester

import (
	"fmt"
	"net/url"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/logging"
)

// ServiceName is MCAT's name for environment overrides (MCAT_SECTION_KEY)
// and logs.
const ServiceName = "mcat"

// Config is mcat.toml.
type Config struct {
	Server config.Server `toml:"server"`
	// MCIAS is where logins are tested. service_name and tags are only the
	// form's initial values: every test names its own.
	MCIAS config.MCIAS   `toml:"mcias"`
	Log   logging.Config `toml:"log"`
}

// LoadConfig reads and validates mcat.toml.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.Load(path, ServiceName, &c); err != nil {
		return nil, err
	}
	u, err := url.Parse(c.MCIAS.ServerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("config %s: mcias.server_url %q: expected an https:// URL", path, c.MCIAS.ServerURL)
	}
	if err := validateTarget(c.MCIAS.ServiceName, c.MCIAS.Tags); err != nil {
		return nil, fmt.Errorf("config %s: mcias: %w", path, err)
	}
	return &c, nil
}
