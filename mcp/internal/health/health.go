// Package health probes a container or a service for readiness: a TCP
// connect, an HTTP(S) GET answered 2xx, or the gRPC health service
// answering SERVING. Wait repeats a probe until it passes, the deadline
// passes, or the caller's stop function reports the target is gone (a
// container that exited). It imports nothing else of MCP.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Check types.
const (
	TCP  = "tcp"
	HTTP = "http"
	GRPC = "grpc"
	None = "none"
)

// Check is one probe.
type Check struct {
	// Type is TCP, HTTP, GRPC or None.
	Type string
	// Addr is host:port.
	Addr string
	// Path is the HTTP path.
	Path string
	// TLS probes over TLS. A liveness probe on the node's own address
	// checks the service answers, not who it is, so the certificate is
	// not verified (nothing secret is sent).
	TLS bool
}

func (c Check) String() string {
	switch c.Type {
	case HTTP:
		scheme := "http"
		if c.TLS {
			scheme = "https"
		}
		return fmt.Sprintf("%s://%s%s", scheme, c.Addr, c.Path)
	case None:
		return "none"
	default:
		return c.Type + " " + c.Addr
	}
}

// Probe runs the check once.
func Probe(ctx context.Context, c Check) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch c.Type {
	case None, "":
		return nil
	case TCP:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.Addr)
		if err != nil {
			return err
		}
		return conn.Close()
	case HTTP:
		return probeHTTP(ctx, c)
	case GRPC:
		return probeGRPC(ctx, c)
	}
	return fmt.Errorf("unknown health check type %q", c.Type)
}

func probeHTTP(ctx context.Context, c Check) error {
	scheme := "http"
	tr := &http.Transport{DisableKeepAlives: true}
	if c.TLS {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // liveness probe on the node's own port, see Check.TLS
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+c.Addr+c.Path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s: %s", c, resp.Status, body)
	}
	return nil
}

func probeGRPC(ctx context.Context, c Check) error {
	creds := insecure.NewCredentials()
	if c.TLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) //nolint:gosec // liveness probe, see Check.TLS
	}
	conn, err := grpc.NewClient(c.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s: %s", c, resp.GetStatus())
	}
	return nil
}

// ErrGone reports that the target stopped while being waited for.
var ErrGone = errors.New("stopped while waiting for health")

// Wait probes every interval until the check passes, timeout passes (the
// error then carries the last probe's failure), or gone returns an error
// (the container exited: waiting longer is pointless).
func Wait(ctx context.Context, c Check, timeout, interval time.Duration, gone func(context.Context) error) error {
	if c.Type == None || c.Type == "" {
		if gone != nil {
			return gone(ctx)
		}
		return nil
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if gone != nil {
			if err := gone(ctx); err != nil {
				return fmt.Errorf("%w: %w", ErrGone, err)
			}
		}
		if last = Probe(ctx, c); last == nil {
			return nil
		}
		if time.Now().Add(interval).After(deadline) {
			return fmt.Errorf("%s not healthy after %s: %w", c, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
