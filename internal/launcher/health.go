package launcher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

const (
	// DefaultHealthTimeout is how long Up waits for a service to become
	// healthy when its HealthCheck sets no Timeout.
	DefaultHealthTimeout = 60 * time.Second

	healthInterval = 200 * time.Millisecond
	// healthAttempt bounds one probe so a hung listener cannot eat the
	// whole startup budget in a single try.
	healthAttempt = 2 * time.Second
)

// HealthCheck says how to tell that a service is up. URL, TCP or both must
// be set; when both are, both must pass.
type HealthCheck struct {
	// URL is fetched with GET and must answer 200. For https URLs the
	// server certificate is verified against the seed CA only.
	URL string
	// TCP is a host:port that must accept a connection.
	TCP string
	// Timeout bounds the wait for the service to become healthy at start;
	// zero means DefaultHealthTimeout.
	Timeout time.Duration
}

func (h HealthCheck) validate() error {
	if h.URL == "" && h.TCP == "" {
		return errors.New("health check needs a URL or a TCP address")
	}
	if h.Timeout < 0 {
		return fmt.Errorf("health check timeout %s is negative", h.Timeout)
	}
	return nil
}

func (h HealthCheck) timeout() time.Duration {
	if h.Timeout == 0 {
		return DefaultHealthTimeout
	}
	return h.Timeout
}

// prober runs health checks with one TLS configuration trusting only the
// seed CA.
type prober struct {
	client *http.Client
}

func newProber(roots *x509.CertPool) *prober {
	return &prober{client: &http.Client{
		Transport: &http.Transport{
			// Local services are never reached through a proxy.
			Proxy:             nil,
			TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (p *prober) close() { p.client.CloseIdleConnections() }

// check runs one probe of h; nil means healthy.
func (p *prober) check(ctx context.Context, h HealthCheck) error {
	if h.TCP != "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", h.TCP)
		if err != nil {
			return fmt.Errorf("tcp %s: %w", h.TCP, err)
		}
		_ = conn.Close()
	}
	if h.URL != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
		if err != nil {
			return fmt.Errorf("health URL: %w", err)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", h.URL, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", h.URL, resp.Status)
		}
	}
	return nil
}
