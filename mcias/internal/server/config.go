package server

import (
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/password"
)

// ServiceName is MCIAS's name for config env overrides (MCIAS_SECTION_KEY),
// health and logs.
const ServiceName = "mcias"

// Config is mcias.toml.
type Config struct {
	Server   config.Server   `toml:"server"`
	Database config.Database `toml:"database"`
	Log      logging.Config  `toml:"log"`
	Tokens   TokensConfig    `toml:"tokens"`
	Argon2   Argon2Config    `toml:"argon2"`
	Throttle ThrottleConfig  `toml:"throttle"`
	// WebAuthn configures passkeys (see webauthn.go); empty means off.
	WebAuthn WebAuthnConfig `toml:"webauthn"`
	// SSOClients are the web UIs allowed to log users in through
	// /sso/authorize (see sso.go).
	SSOClients []SSOClient `toml:"sso_clients"`
	// Debug holds opt-in diagnostics (debug.go).
	Debug DebugConfig `toml:"debug"`
}

// TokensConfig is the [tokens] section.
type TokensConfig struct {
	// Issuer is the iss claim (default "mcias").
	Issuer string `toml:"issuer"`
	// HumanTTL is the lifetime of login tokens (default 12h).
	HumanTTL config.Duration `toml:"human_ttl"`
	// SystemTTL is the default and maximum lifetime of system-account
	// tokens (default 8760h = 365 days).
	SystemTTL config.Duration `toml:"system_ttl"`
}

// Argon2Config is the [argon2] section: password hashing cost, and how
// many hashes may run at once.
type Argon2Config struct {
	MemoryKiB   int `toml:"memory_kib"`
	Iterations  int `toml:"iterations"`
	Parallelism int `toml:"parallelism"`
	// MaxConcurrent bounds the Argon2id computations running at once
	// (each holds memory_kib); 0 (default) sizes it automatically:
	// 2 × GOMAXPROCS, but no more than fit in half the memory limit (the
	// cgroup's memory.max, else MemTotal). See password.AutoSlots.
	MaxConcurrent int `toml:"max_concurrent"`
	// MaxWait is how long a request waits for a free slot before it is
	// answered 503 with Retry-After (default 2s).
	MaxWait config.Duration `toml:"max_wait"`
}

// ThrottleConfig is the [throttle] section.
type ThrottleConfig struct {
	AccountFailures int             `toml:"account_failures"`
	IPFailures      int             `toml:"ip_failures"`
	Window          config.Duration `toml:"window"`
}

// LoadConfig reads and validates mcias.toml.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.Load(path, ServiceName, &c); err != nil {
		return nil, err
	}
	if _, err := c.Identity(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := validateSSOClients(c.SSOClients); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// Identity turns the config into identity.Config, with defaults applied.
func (c *Config) Identity() (identity.Config, error) {
	p := password.DefaultParams()
	if c.Argon2.MemoryKiB != 0 {
		p.Memory = uint32(c.Argon2.MemoryKiB) //nolint:gosec // bounded by Validate below
	}
	if c.Argon2.Iterations != 0 {
		p.Iterations = uint32(c.Argon2.Iterations) //nolint:gosec // bounded by Validate below
	}
	if c.Argon2.Parallelism != 0 {
		if c.Argon2.Parallelism < 0 || c.Argon2.Parallelism > 64 {
			return identity.Config{}, fmt.Errorf("argon2.parallelism must be 1..64, got %d", c.Argon2.Parallelism)
		}
		p.Parallelism = uint8(c.Argon2.Parallelism)
	}
	if c.Argon2.MemoryKiB < 0 || c.Argon2.Iterations < 0 {
		return identity.Config{}, fmt.Errorf("argon2 parameters must not be negative")
	}
	if c.Argon2.MaxConcurrent < 0 || c.Argon2.MaxConcurrent > 1024 {
		return identity.Config{}, fmt.Errorf("argon2.max_concurrent must be 0 (automatic) or 1..1024, got %d", c.Argon2.MaxConcurrent)
	}
	if w := c.Argon2.MaxWait.Duration; w < 0 || w > time.Minute {
		return identity.Config{}, fmt.Errorf("argon2.max_wait must be between 0 (default 2s) and 1m, got %s", w)
	}
	if err := p.Validate(); err != nil {
		return identity.Config{}, fmt.Errorf("argon2: %w", err)
	}
	ic := identity.Config{
		Issuer: c.Tokens.Issuer, HumanTTL: c.Tokens.HumanTTL.Duration, SystemTTL: c.Tokens.SystemTTL.Duration,
		Argon2: p, AccountFailures: c.Throttle.AccountFailures, IPFailures: c.Throttle.IPFailures,
		ThrottleWindow: c.Throttle.Window.Duration,
		Argon2Slots:    c.Argon2.MaxConcurrent, Argon2MaxWait: c.Argon2.MaxWait.Duration,
	}
	ic.Defaults()
	if ic.HumanTTL < time.Minute || ic.SystemTTL < time.Minute {
		return identity.Config{}, fmt.Errorf("tokens.human_ttl and tokens.system_ttl must be at least 1m")
	}
	if ic.AccountFailures < 1 || ic.IPFailures < 1 {
		return identity.Config{}, fmt.Errorf("throttle.account_failures and throttle.ip_failures must be at least 1")
	}
	return ic, nil
}

// WebAuthnConfig is the [webauthn] section: the passkey relying party.
// Without rp_id, passkeys are off and the web UI offers password sign-in
// only.
type WebAuthnConfig struct {
	// RPID is the relying party ID, normally MCIAS's host name.
	RPID string `toml:"rp_id"`
	// RPDisplayName is shown by browsers while creating a passkey
	// (default "MCIAS").
	RPDisplayName string `toml:"rp_display_name"`
	// RPOrigins are the exact origins (scheme://host[:port]) the web UI is
	// served on; ceremonies from any other origin fail.
	RPOrigins []string `toml:"rp_origins"`
}

// Enabled reports whether passkeys are configured.
func (c WebAuthnConfig) Enabled() bool { return c.RPID != "" || len(c.RPOrigins) > 0 }

func (c WebAuthnConfig) passkeys() identity.PasskeyConfig {
	return identity.PasskeyConfig{RPID: c.RPID, RPDisplayName: c.RPDisplayName, RPOrigins: c.RPOrigins}
}

// Validate checks the section when it is used; errors name the key.
func (c WebAuthnConfig) Validate() error {
	if !c.Enabled() {
		if c.RPDisplayName != "" {
			return errors.New("webauthn.rp_display_name is set but webauthn.rp_id is not")
		}
		return nil
	}
	if err := c.passkeys().Validate(); err != nil {
		return fmt.Errorf("webauthn.%w", err)
	}
	return nil
}
