package server

import (
	"fmt"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/dnsserver"
	"git.metacircular.net/metacircular/mcns/internal/records"
	"git.metacircular.net/metacircular/mcns/internal/rr"
)

// ServiceName is MCNS's name for config env overrides (MCNS_SECTION_KEY),
// health and snapshots.
const ServiceName = "mcns"

// Config is mcns.toml.
type Config struct {
	Server   config.Server    `toml:"server"`
	Database config.Database  `toml:"database"`
	MCIAS    config.MCIAS     `toml:"mcias"`
	Log      logging.Config   `toml:"log"`
	DNS      dnsserver.Config `toml:"dns"`
	MCNS     MCNSConfig       `toml:"mcns"`
	// Zones are created at init and at every start when absent; existing
	// zones are left as they are.
	Zones []ZoneSeed `toml:"zones"`
}

// MCNSConfig is the [mcns] section.
type MCNSConfig struct {
	// AgentAccounts are the system accounts that may manage every record
	// (absent: ["mcp-agent"]; [] names none).
	AgentAccounts []string `toml:"agent_accounts"`
}

// ZoneSeed is one [[zones]] table.
type ZoneSeed struct {
	Name       string `toml:"name"`
	PrimaryNS  string `toml:"primary_ns"`
	AdminEmail string `toml:"admin_email"`
}

// Spec is the seed as a zone to create.
func (z ZoneSeed) Spec() dnsdata.Spec {
	return dnsdata.Spec{Name: z.Name, PrimaryNS: z.PrimaryNS, AdminEmail: z.AdminEmail}
}

// LoadConfig reads and validates mcns.toml.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.Load(path, ServiceName, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the sections config.Load does not check itself and fills
// defaults; config.Load calls it and names the file in its error.
func (c *Config) Validate() error {
	if err := c.DNS.Validate(); err != nil {
		return err
	}
	if c.MCNS.AgentAccounts == nil {
		c.MCNS.AgentAccounts = append([]string(nil), records.DefaultAgentAccounts...)
	}
	for i, a := range c.MCNS.AgentAccounts {
		if a == "" {
			return fmt.Errorf("mcns.agent_accounts[%d] is empty", i)
		}
	}
	seen := map[string]bool{}
	for i, seed := range c.Zones {
		if seed.Name == "" {
			return fmt.Errorf("zones[%d].name is required", i)
		}
		z := dnsdata.Zone{Name: seed.Name, PrimaryNS: seed.PrimaryNS, AdminEmail: seed.AdminEmail}
		if err := rr.ValidateZone(&z); err != nil {
			return fmt.Errorf("zones[%d] (%s): %w", i, seed.Name, err)
		}
		if seen[z.Name] {
			return fmt.Errorf("zones[%d]: zone %s is listed twice", i, z.Name)
		}
		seen[z.Name] = true
	}
	return nil
}
