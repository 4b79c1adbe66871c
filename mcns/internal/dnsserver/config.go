package dnsserver

import (
	"fmt"
	"net/netip"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
)

// Config is the [dns] section of mcns.toml.
type Config struct {
	// ListenAddr is the UDP and TCP address DNS is served on (default ":53").
	ListenAddr string `toml:"listen_addr"`
	// Upstreams are resolvers ("ip:port") tried in order for names outside
	// the served zones; each try gets UpstreamTimeout before the next.
	Upstreams []string `toml:"upstreams"`
	// UpstreamTimeout bounds one try at one upstream (default 2s).
	UpstreamTimeout config.Duration `toml:"upstream_timeout"`
	// RecursionNetworks are the client networks (CIDR) allowed to use
	// forwarding; everyone else gets REFUSED for names outside the zones,
	// so MCNS is never an open resolver. Default: loopback only.
	RecursionNetworks []string `toml:"recursion_networks"`
	// CacheSize is the number of forwarded answers cached (default 10000).
	CacheSize int `toml:"cache_size"`
	// AnswerCacheBytes bounds the cache of packed answers from the zones
	// (default 8 MiB; -1 turns it off).
	AnswerCacheBytes int `toml:"answer_cache_bytes"`
}

// defaultAnswerCacheBytes holds tens of thousands of typical answers.
const defaultAnswerCacheBytes = 8 << 20

// Networks parses RecursionNetworks (default 127.0.0.0/8 and ::1/128).
func (c Config) Networks() ([]netip.Prefix, error) {
	if len(c.RecursionNetworks) == 0 {
		return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, nil
	}
	out := make([]netip.Prefix, 0, len(c.RecursionNetworks))
	for _, s := range c.RecursionNetworks {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("dns.recursion_networks: %q is not a CIDR network", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Validate checks the section and fills defaults.
func (c *Config) Validate() error {
	if c.ListenAddr == "" {
		c.ListenAddr = ":53"
	}
	if c.UpstreamTimeout.Duration == 0 {
		c.UpstreamTimeout.Duration = 2 * time.Second
	}
	if c.CacheSize == 0 {
		c.CacheSize = 10000
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("dns.cache_size must not be negative")
	}
	switch {
	case c.AnswerCacheBytes == 0:
		c.AnswerCacheBytes = defaultAnswerCacheBytes
	case c.AnswerCacheBytes < -1:
		return fmt.Errorf("dns.answer_cache_bytes must be a byte count, or -1 for no cache")
	}
	for _, u := range c.Upstreams {
		if _, err := netip.ParseAddrPort(u); err != nil {
			return fmt.Errorf("dns.upstreams: %q must be ip:port", u)
		}
	}
	_, err := c.Networks()
	return err
}
