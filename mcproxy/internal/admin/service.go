package admin

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
	"git.metacircular.net/metacircular/mcproxy/internal/store"
)

// The service's errors, of mcdsl/apierr kinds that the admin socket's
// gRPC server answers with (InvalidArgument, NotFound, FailedPrecondition).
var (
	// ErrInvalid wraps a message naming what is wrong with a route or rule.
	ErrInvalid = apierr.New(apierr.Invalid, "invalid")
	// ErrNotFound: the route or rule to remove does not exist.
	ErrNotFound = store.ErrNotFound
	// ErrRefused wraps the data plane's reason for refusing a rule set: the
	// request is valid, but this mc-proxy cannot apply it (a country rule
	// without firewall.geoip_db).
	ErrRefused = apierr.New(apierr.Precondition, "refused by the data plane")
)

// Dataplane is what the admin service drives: the proxy server, or a fake
// in tests. SetRoutes and SetRules replace the whole state atomically.
type Dataplane interface {
	SetRoutes(t *route.Table)
	SetRules(rules []route.Rule) error
}

// ListenerStatus is one listener as the data plane reports it.
type ListenerStatus struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Routes int    `json:"routes"`
}

// Stats is the data plane's live view.
type Stats struct {
	Listeners       []ListenerStatus `json:"listeners"`
	OpenConnections int64            `json:"open_connections"`
}

// Status is what the Status RPC reports.
type Status struct {
	Stats
	Routes        int      `json:"routes"`
	FirewallRules int      `json:"firewall_rules"`
	Divergence    []string `json:"divergence"`
	Database      string   `json:"database"`
}

// Options configures New.
type Options struct {
	Store     *store.Store
	Dataplane Dataplane
	// Stats reports the data plane's listeners and connections; nil
	// reports the configured Listeners with the database's route counts.
	Stats func() Stats
	// Listeners are the configured listener names (in config order);
	// routes naming another listener are refused.
	Listeners []string
	// TOMLRoutes and TOMLRules are mc-proxy.toml's seed, compared with the
	// database for Status.
	TOMLRoutes []route.Route
	TOMLRules  []route.Rule
	Logger     *slog.Logger
}

// Service changes and reports mc-proxy's routes and rules.
type Service struct {
	opts Options
	log  *slog.Logger
	// mu orders changes, so the data plane receives states in commit
	// order (SQLite serializes the transactions; this serializes the
	// hand-over too).
	mu sync.Mutex
}

// New builds the service.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{opts: opts, log: opts.Logger}
}

// Table builds a route table from the given routes; an error means the
// database holds something the route package refuses.
func Table(routes []route.Route) (*route.Table, error) {
	t, err := route.NewTable(routes)
	if err != nil {
		return nil, fmt.Errorf("build route table: %w", err)
	}
	return t, nil
}

func (s *Service) applyRoutes(all []route.Route) error {
	t, err := Table(all)
	if err != nil {
		return err
	}
	s.opts.Dataplane.SetRoutes(t)
	return nil
}

func (s *Service) applyRules(all []route.Rule) error {
	if err := s.opts.Dataplane.SetRules(all); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return nil
}

// Routes lists the routes, only listener's when it is not empty.
func (s *Service) Routes(ctx context.Context, listener string) ([]route.Route, error) {
	all, err := s.opts.Store.Routes(ctx)
	if err != nil {
		return nil, err
	}
	if listener == "" {
		return all, nil
	}
	return slices.DeleteFunc(all, func(r route.Route) bool { return r.Listener != listener }), nil
}

// checkRoute normalizes and validates r for this mc-proxy: a valid route
// on a configured listener whose L7 certificate and key load.
func (s *Service) checkRoute(r *route.Route) error {
	r.Normalize()
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !slices.Contains(s.opts.Listeners, r.Listener) {
		return fmt.Errorf("%w: route %s: no listener named %q (configured: %v)", ErrInvalid, r.Key(), r.Listener, s.opts.Listeners)
	}
	if r.Mode == route.L7 {
		if _, err := tls.LoadX509KeyPair(r.TLSCert, r.TLSKey); err != nil {
			return fmt.Errorf("%w: route %s: load tls_cert/tls_key: %w", ErrInvalid, r.Key(), err)
		}
	}
	return nil
}

// AddRoute inserts r or replaces the route with the same key, and hands
// the new table to the data plane. It returns the stored route and
// whether it was new.
func (s *Service) AddRoute(ctx context.Context, r route.Route) (route.Route, bool, error) {
	if err := s.checkRoute(&r); err != nil {
		return route.Route{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	created, err := s.opts.Store.PutRoute(ctx, r, s.applyRoutes)
	if err != nil {
		return route.Route{}, false, err
	}
	s.log.Info("route added", "route", r.Key(), "mode", r.Mode, "backend", r.Backend, "backend_protocol", r.BackendProtocol, "created", created)
	return r, created, nil
}

// RemoveRoute removes a route and hands the new table to the data plane.
func (s *Service) RemoveRoute(ctx context.Context, listener, hostname string) error {
	if listener == "" || hostname == "" {
		return fmt.Errorf("%w: listener and hostname are required", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.opts.Store.DeleteRoute(ctx, listener, hostname, s.applyRoutes); err != nil {
		return err
	}
	s.log.Info("route removed", "listener", listener, "hostname", hostname)
	return nil
}

// Rules lists the firewall rules.
func (s *Service) Rules(ctx context.Context) ([]route.Rule, error) {
	return s.opts.Store.Rules(ctx)
}

// AddRule inserts a firewall rule (or updates its reason) and hands the
// new rule set to the data plane; a set the data plane refuses is not
// stored.
func (s *Service) AddRule(ctx context.Context, r route.Rule) (route.Rule, bool, error) {
	if err := r.Validate(); err != nil {
		return route.Rule{}, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	created, err := s.opts.Store.PutRule(ctx, r, s.applyRules)
	if err != nil {
		return route.Rule{}, false, err
	}
	s.log.Info("firewall rule added", "rule", r.Key(), "reason", r.Reason, "created", created)
	return r, created, nil
}

// RemoveRule removes a firewall rule and hands the new set to the data
// plane.
func (s *Service) RemoveRule(ctx context.Context, kind, value string) error {
	r := route.Rule{Kind: kind, Value: value}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.opts.Store.DeleteRule(ctx, r.Kind, r.Value, s.applyRules); err != nil {
		return err
	}
	s.log.Info("firewall rule removed", "rule", r.Key())
	return nil
}

// Divergence lists the differences between mc-proxy.toml and the
// database, one line each.
func (s *Service) Divergence(ctx context.Context) ([]string, error) {
	return s.opts.Store.Diff(ctx, s.opts.TOMLRoutes, s.opts.TOMLRules)
}

// Status reports the data plane's listeners and connections, the
// database's counts and the TOML/database divergence.
func (s *Service) Status(ctx context.Context) (Status, error) {
	routes, err := s.opts.Store.Routes(ctx)
	if err != nil {
		return Status{}, err
	}
	rules, err := s.opts.Store.Rules(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{
		Routes: len(routes), FirewallRules: len(rules), Database: s.opts.Store.DB().Path(),
		Divergence: store.Diff(s.opts.TOMLRoutes, routes, s.opts.TOMLRules, rules),
	}
	if s.opts.Stats != nil {
		st.Stats = s.opts.Stats()
	} else {
		for _, name := range s.opts.Listeners {
			n := 0
			for _, r := range routes {
				if r.Listener == name {
					n++
				}
			}
			st.Listeners = append(st.Listeners, ListenerStatus{Name: name, Routes: n})
		}
	}
	if st.Divergence == nil {
		st.Divergence = []string{}
	}
	return st, nil
}
