package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// The storage kind and key of the policy document in the sys view.
const (
	storeKind = "policy"
	storeKey  = "document"
)

// document is everything stored: one value, so a change is atomic.
type document struct {
	Rules  []Rule  `json:"rules"`
	Limits []Limit `json:"limits"`
	NextID int64   `json:"next_id"`
}

// Engine is the policy over its storage (the barrier's sys view). It
// keeps nothing in memory: each decision (or each request's Snapshot)
// reads the stored document, so sealing leaves no policy behind and a
// change applies to the next request.
type Engine struct {
	storage engine.Storage
	// mu serializes changes (read, modify, write).
	mu sync.Mutex
}

// New returns the policy stored in storage.
func New(storage engine.Storage) *Engine { return &Engine{storage: storage} }

func (e *Engine) load(ctx context.Context) (document, error) {
	var d document
	b, err := e.storage.Get(ctx, storeKind, storeKey)
	if errors.Is(err, engine.ErrNotFound) {
		return document{NextID: 1}, nil
	}
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("stored policy: %w", err)
	}
	SortRules(d.Rules)
	SortLimits(d.Limits)
	return d, nil
}

func (e *Engine) change(ctx context.Context, f func(d *document) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, err := e.load(ctx)
	if err != nil {
		return err
	}
	if err := f(&d); err != nil {
		return err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return e.storage.Put(ctx, storeKind, storeKey, b)
}

// Rules lists the ACL rules in evaluation order.
func (e *Engine) Rules(ctx context.Context) ([]Rule, error) {
	d, err := e.load(ctx)
	return d.Rules, err
}

// Limits lists the issuance limits in evaluation order.
func (e *Engine) Limits(ctx context.Context) ([]Limit, error) {
	d, err := e.load(ctx)
	return d.Limits, err
}

// CreateRule validates and stores a rule, assigning its id.
func (e *Engine) CreateRule(ctx context.Context, r Rule) (Rule, error) {
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	err := e.change(ctx, func(d *document) error {
		r.ID = d.NextID
		d.NextID++
		d.Rules = append(d.Rules, r)
		return nil
	})
	return r, err
}

// UpdateRule replaces rule id.
func (e *Engine) UpdateRule(ctx context.Context, id int64, r Rule) (Rule, error) {
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	r.ID = id
	err := e.change(ctx, func(d *document) error {
		i := slices.IndexFunc(d.Rules, func(x Rule) bool { return x.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: rule %d", engine.ErrNotFound, id)
		}
		d.Rules[i] = r
		return nil
	})
	return r, err
}

// DeleteRule removes rule id.
func (e *Engine) DeleteRule(ctx context.Context, id int64) error {
	return e.change(ctx, func(d *document) error {
		i := slices.IndexFunc(d.Rules, func(x Rule) bool { return x.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: rule %d", engine.ErrNotFound, id)
		}
		d.Rules = slices.Delete(d.Rules, i, i+1)
		return nil
	})
}

// CreateLimit validates and stores a limit, assigning its id.
func (e *Engine) CreateLimit(ctx context.Context, l Limit) (Limit, error) {
	if err := l.Validate(); err != nil {
		return Limit{}, err
	}
	err := e.change(ctx, func(d *document) error {
		l.ID = d.NextID
		d.NextID++
		d.Limits = append(d.Limits, l)
		return nil
	})
	return l, err
}

// UpdateLimit replaces limit id.
func (e *Engine) UpdateLimit(ctx context.Context, id int64, l Limit) (Limit, error) {
	if err := l.Validate(); err != nil {
		return Limit{}, err
	}
	l.ID = id
	err := e.change(ctx, func(d *document) error {
		i := slices.IndexFunc(d.Limits, func(x Limit) bool { return x.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: limit %d", engine.ErrNotFound, id)
		}
		d.Limits[i] = l
		return nil
	})
	return l, err
}

// DeleteLimit removes limit id.
func (e *Engine) DeleteLimit(ctx context.Context, id int64) error {
	return e.change(ctx, func(d *document) error {
		i := slices.IndexFunc(d.Limits, func(x Limit) bool { return x.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: limit %d", engine.ErrNotFound, id)
		}
		d.Limits = slices.Delete(d.Limits, i, i+1)
		return nil
	})
}

func checkCaller(c engine.Caller) error {
	if c.Username == "" {
		return engine.ErrUnauthenticated
	}
	return nil
}

// Snapshot is the policy as read once for one caller's request: its rule
// check and its limit checks then see one document and cost one read of
// the barrier. It is meant to live as long as the request; nothing of it
// is kept.
type Snapshot struct {
	c engine.Caller
	d document
}

// Snapshot reads the policy for the decisions of one request of c (or
// nothing, for an admin, whom the policy does not bind). It fails like
// Allow for an unauthenticated caller or a sealed barrier.
func (e *Engine) Snapshot(ctx context.Context, c engine.Caller) (*Snapshot, error) {
	if err := checkCaller(c); err != nil {
		return nil, err
	}
	if c.IsAdmin() {
		return &Snapshot{c: c}, nil
	}
	d, err := e.load(ctx)
	if err != nil {
		return nil, err
	}
	return &Snapshot{c: c, d: d}, nil
}

// Allow reports, as an error, whether the caller may perform op on
// resource in mount: nil, engine.ErrDenied naming the reason, or the
// storage's error (engine.ErrSealed). Admins are always allowed.
func (e *Engine) Allow(ctx context.Context, c engine.Caller, mount, op, resource string) error {
	s, err := e.Snapshot(ctx, c)
	if err != nil {
		return err
	}
	return s.Allow(mount, op, resource)
}

// CheckNames reports, as an error, whether every name is within the
// caller's issuance limits on mount; the error names the first refused
// one. Admins are not limited.
func (e *Engine) CheckNames(ctx context.Context, c engine.Caller, mount string, n pki.Names) error {
	s, err := e.Snapshot(ctx, c)
	if err != nil {
		return err
	}
	return s.CheckNames(mount, n)
}

// Allow is Engine.Allow on the snapshot.
func (s *Snapshot) Allow(mount, op, resource string) error {
	if s.c.IsAdmin() {
		return nil
	}
	if dec := EvaluateRules(s.d.Rules, s.c, mount, op, resource); !dec.Allowed {
		return fmt.Errorf("%w: %s may not %s %s on mount %s (%s)", engine.ErrDenied, s.c.Username, op, resource, mount, dec.Reason)
	}
	return nil
}

// CheckNames is Engine.CheckNames on the snapshot.
func (s *Snapshot) CheckNames(mount string, n pki.Names) error {
	if s.c.IsAdmin() {
		return nil
	}
	for _, name := range n.DNS {
		if dec := EvaluateName(s.d.Limits, s.c, mount, name, netip.Addr{}); !dec.Allowed {
			return fmt.Errorf("%w: %s is outside %s's issuance limits (%s)", engine.ErrDenied, name, s.c.Username, dec.Reason)
		}
	}
	for _, ip := range n.IPs {
		if dec := EvaluateName(s.d.Limits, s.c, mount, "", ip); !dec.Allowed {
			return fmt.Errorf("%w: IP address %s is outside %s's issuance limits (%s)", engine.ErrDenied, ip, s.c.Username, dec.Reason)
		}
	}
	return nil
}

// NameDecision is one name's decision in an explanation.
type NameDecision struct {
	Name string
	Decision
}

// Explain evaluates without acting: the operation's decision and each
// name's (pass empty op to skip the operation).
func (e *Engine) Explain(ctx context.Context, c engine.Caller, mount, op, resource string, n pki.Names) (Decision, []NameDecision, error) {
	d, err := e.load(ctx)
	if err != nil {
		return Decision{}, nil, err
	}
	var dec Decision
	switch {
	case c.IsAdmin():
		dec = Decision{Allowed: true, Reason: "admin (policy bypassed)"}
	case op != "":
		dec = EvaluateRules(d.Rules, c, mount, op, resource)
	}
	var out []NameDecision
	for _, name := range n.DNS {
		nd := NameDecision{Name: name, Decision: EvaluateName(d.Limits, c, mount, name, netip.Addr{})}
		if c.IsAdmin() {
			nd.Decision = Decision{Allowed: true, Reason: "admin (limits bypassed)"}
		}
		out = append(out, nd)
	}
	for _, ip := range n.IPs {
		nd := NameDecision{Name: ip.String(), Decision: EvaluateName(d.Limits, c, mount, "", ip)}
		if c.IsAdmin() {
			nd.Decision = Decision{Allowed: true, Reason: "admin (limits bypassed)"}
		}
		out = append(out, nd)
	}
	return dec, out, nil
}
