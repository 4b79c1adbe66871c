// Package boot is the agent's boot sequencing: at start, the services it
// runs are brought up in the configured stages ([[boot.sequence]]), each
// stage's services healthy before the next stage begins. The first stage
// is the foundation (DNS, typically): it blocks and is retried until it
// is healthy, because nothing after it works without it. Later stages
// are given their timeout, then logged, alerted and passed over. Services
// in no stage come last. Bringing a service up means its containers (made
// again if the runtime lost them, pulling images) and their health; its
// routes and names are registered again by the monitor once mc-proxy and
// MCNS are up.
package boot

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/health"
	"git.metacircular.net/metacircular/mcp/internal/registry"
)

// Stage is one [[boot.sequence]] entry.
type Stage struct {
	Name     string
	Services []string
	// Timeout bounds one attempt at the stage (default 2m).
	Timeout time.Duration
	// Health is the stage's extra check of each service: tcp, grpc or
	// http on the service's first route port ("" or none: the
	// components' own health checks only).
	Health string
}

// Node is what boot needs from the agent.
type Node interface {
	// Up brings a service's containers up and waits for their health
	// (a boot operation); it returns the operation's error.
	Up(ctx context.Context, service string) error
	// Services lists the registry's services.
	Services(ctx context.Context) ([]registry.Service, error)
	// FirstPort is the host port of the service's first route (0 if
	// none).
	FirstPort(ctx context.Context, service string) (int, error)
}

// Sequence runs the boot stages.
type Sequence struct {
	Stages []Stage
	Node   Node
	Logger *slog.Logger
	// Alert reports a stage that did not come up.
	Alert func(ctx context.Context, service, message string)
	// Retry is the pause between foundation attempts (default 5s).
	Retry time.Duration
	// Host is where health probes connect (default 127.0.0.1).
	Host string
}

// Run brings every service whose desired state is running up, stage by
// stage. It returns when all stages were attempted (or ctx ends).
func (s *Sequence) Run(ctx context.Context) error {
	svcs, err := s.Node.Services(ctx)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	var rest []string
	for _, svc := range svcs {
		if svc.Desired == registry.DesiredRunning && svc.Revision > 0 {
			running[svc.Name] = true
			rest = append(rest, svc.Name)
		}
	}
	for i, st := range s.Stages {
		var names []string
		for _, n := range st.Services {
			if running[n] {
				names = append(names, n)
			}
			rest = slices.DeleteFunc(rest, func(r string) bool { return r == n })
		}
		if len(names) == 0 {
			s.Logger.Info("boot stage has no deployed service", "stage", st.Name)
			continue
		}
		foundation := i == 0
		for attempt := 1; ; attempt++ {
			s.Logger.Info("boot stage starting", "stage", st.Name, "services", names, "attempt", attempt)
			err := s.stage(ctx, st, names)
			if err == nil {
				s.Logger.Info("boot stage healthy", "stage", st.Name)
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !foundation {
				s.Logger.Error("boot stage not healthy; continuing", "stage", st.Name, "error", err)
				if s.Alert != nil {
					s.Alert(ctx, "", fmt.Sprintf("boot stage %s not healthy: %v", st.Name, err))
				}
				break
			}
			s.Logger.Error("foundation boot stage not healthy; retrying", "stage", st.Name, "attempt", attempt, "error", err)
			if attempt == 1 && s.Alert != nil {
				s.Alert(ctx, "", fmt.Sprintf("foundation boot stage %s not healthy, retrying until it is: %v", st.Name, err))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(s.retry()):
			}
		}
	}
	for _, n := range rest {
		if err := s.Node.Up(ctx, n); err != nil {
			s.Logger.Error("boot: service did not come up", "service", n, "error", err)
			if s.Alert != nil {
				s.Alert(ctx, n, "did not come up at boot: "+err.Error())
			}
		}
	}
	return nil
}

func (s *Sequence) retry() time.Duration {
	if s.Retry <= 0 {
		return 5 * time.Second
	}
	return s.Retry
}

// stage brings up the stage's services and checks them.
func (s *Sequence) stage(ctx context.Context, st Stage, names []string) error {
	timeout := st.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, n := range names {
		if err := s.Node.Up(ctx, n); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if st.Health == "" || st.Health == health.None {
			continue
		}
		port, err := s.Node.FirstPort(ctx, n)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if port == 0 {
			continue
		}
		host := s.Host
		if host == "" {
			host = "127.0.0.1"
		}
		check := health.Check{Type: st.Health, Addr: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/v1/health"}
		if st.Health == health.HTTP || st.Health == health.GRPC {
			// Platform services terminate TLS themselves; try TLS first.
			check.TLS = true
			if health.Probe(ctx, check) != nil {
				check.TLS = false
			}
		}
		deadline, _ := ctx.Deadline()
		if err := health.Wait(ctx, check, time.Until(deadline), 500*time.Millisecond, nil); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}
