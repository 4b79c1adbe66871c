package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcp/internal/certs"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/routes"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// Operation kinds.
const (
	KindDeploy   = "deploy"
	KindUndeploy = "undeploy"
	KindStop     = "stop"
	KindStart    = "start"
	KindRestart  = "restart"
	KindRecover  = "recover"
	// KindBoot brings a service's containers up and waits for their
	// health at agent start (boot sequencing); routes and names are the
	// monitor's to repair once mc-proxy and MCNS are up.
	KindBoot = "boot"
)

// Step states in events.
const (
	StepRunning = "running"
	StepDone    = "done"
	StepFailed  = "failed"
	StepUndoing = "undoing"
	StepUndone  = "undone"
)

// Certs provides the certificates of L7 routes.
type Certs interface {
	Ensure(ctx context.Context, hostname string) (certs.Files, error)
	Remove(ctx context.Context, hostname string) error
}

// Routes is the node's mc-proxy.
type Routes interface {
	Upsert(ctx context.Context, r routes.Route) error
	Remove(ctx context.Context, listener, hostname string) error
	List(ctx context.Context) ([]routes.Route, error)
}

// DNS is MCNS.
type DNS interface {
	InZone(name string) bool
	Ensure(ctx context.Context, name, value string) error
	Remove(ctx context.Context, name, value string) error
	Has(ctx context.Context, name, value string) (bool, error)
}

// Config is what the engine needs to know about its node.
type Config struct {
	// Node is the node's name; Domain the platform domain D.
	Node, Domain string
	// Address is the node's address: mc-proxy backends and DNS records
	// point there.
	Address string
	// PublishIP is the host address container ports are published on.
	PublishIP string
	// PortLow and PortHigh bound the host ports allocated to routes.
	PortLow, PortHigh int
	// Listeners maps an mc-proxy listener port (a route's port) to the
	// listener's name; DefaultListener serves ports not in the map ("":
	// such a route is an error).
	Listeners       map[int]string
	DefaultListener string
	// DataRoot holds the services' data directories (/srv): volumes
	// under DataRoot/<service> are created before the container.
	DataRoot string
	// HealthTimeout bounds the wait for a new container's health (a
	// component's own timeout wins); HealthInterval spaces the probes.
	HealthTimeout, HealthInterval time.Duration
	// Drain is how long the old containers keep running after the routes
	// switched, so requests in flight finish.
	Drain time.Duration
	// StopTimeout is the grace before a stopped container is killed.
	StopTimeout time.Duration
	// Auth gives the registry credentials for an image (nil: none).
	Auth func(img spec.Image) (*runtime.Auth, error)
}

// Deps are the engine's collaborators.
type Deps struct {
	Config   Config
	Registry *registry.Store
	Runtime  runtime.Runtime
	Certs    Certs
	Routes   Routes
	DNS      DNS
	Logger   *slog.Logger
	// BeforeStep, when set, runs before every step and undo (tests use it
	// to stop an operation dead, as a crash would).
	BeforeStep func(op registry.Operation, step string)
}

// Engine runs operations.
type Engine struct {
	Deps
	log    *slog.Logger
	broker broker

	mu      sync.Mutex
	running map[string]int64 // service → operation in progress
	// held serializes an operation with the monitor's pass over the same
	// service: whoever holds a service's lock acts on it alone.
	held map[string]*sync.Mutex
	wg   sync.WaitGroup
	// base is the context operations run in: the agent's lifetime, never
	// a caller's, so a client going away does not stop a deploy halfway.
	base context.Context
}

// New returns an engine; operations run in ctx (the agent's lifetime).
func New(ctx context.Context, d Deps) *Engine {
	l := d.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	if d.Config.HealthInterval <= 0 {
		d.Config.HealthInterval = 500 * time.Millisecond
	}
	if d.Config.HealthTimeout <= 0 {
		d.Config.HealthTimeout = 60 * time.Second
	}
	if d.Config.StopTimeout <= 0 {
		d.Config.StopTimeout = 10 * time.Second
	}
	return &Engine{Deps: d, log: l, running: map[string]int64{}, held: map[string]*sync.Mutex{}, base: ctx,
		broker: broker{subs: map[int64][]chan Event{}}}
}

// Event is an operation event as published to watchers.
type Event struct {
	registry.Event
	// Final marks the operation's last event; Result is then its state
	// (succeeded, failed, rolled_back) and Error why it did not succeed.
	Final  bool
	Result string
	Error  string
}

// ErrBusy reports an operation already in progress on a service.
var ErrBusy = apierr.New(apierr.Conflict, "an operation is in progress")

// Begin starts an operation of kind on service in the background and
// returns it with a channel of its events, closed after the final one.
// sp is the definition for a deploy (stored as a new revision); other
// kinds act on the serving revision.
func (e *Engine) Begin(kind, service string, sp *spec.Service) (registry.Operation, <-chan Event, error) {
	ctx := e.base
	if ctx.Err() != nil {
		return registry.Operation{}, nil, apierr.New(apierr.Unavailable, "agent is stopping")
	}
	e.mu.Lock()
	if id, busy := e.running[service]; busy {
		e.mu.Unlock()
		return registry.Operation{}, nil, fmt.Errorf("%w on %s (operation %d)", ErrBusy, service, id)
	}
	e.running[service] = 0
	e.mu.Unlock()
	op, err := e.prepare(ctx, kind, service, sp)
	if err != nil {
		e.release(service, 0)
		return registry.Operation{}, nil, err
	}
	e.mu.Lock()
	e.running[service] = op.ID
	e.mu.Unlock()
	ch := e.broker.subscribe(op.ID)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.release(service, op.ID)
		l := e.lockFor(service)
		l.Lock()
		defer l.Unlock()
		e.execute(ctx, op)
	}()
	return op, ch, nil
}

// prepare checks the service and records the operation.
func (e *Engine) prepare(ctx context.Context, kind, service string, sp *spec.Service) (registry.Operation, error) {
	op := registry.Operation{Service: service, Kind: kind}
	svc, err := e.Registry.Service(ctx, service)
	switch {
	case kind == KindDeploy:
		if err == nil {
			op.PrevRevision = svc.Revision
		} else if !errors.Is(err, registry.ErrNotFound) {
			return op, err
		}
		if op.Revision, err = e.Registry.NewRevision(ctx, sp); err != nil {
			return op, err
		}
	case err != nil:
		return op, err
	case svc.Revision == 0:
		return op, apierr.New(apierr.Precondition, "service "+service+" has no successful deploy yet")
	default:
		op.Revision, op.PrevRevision = svc.Revision, svc.Revision
	}
	id, err := e.Registry.NewOperation(ctx, op)
	if err != nil {
		return op, err
	}
	return e.Registry.Operation(ctx, id)
}

// release marks service free of operation id, unless another operation
// has taken it since (finish releases before the final event, so a caller
// that saw it may begin the next operation at once).
func (e *Engine) release(service string, id int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur, ok := e.running[service]; ok && cur == id {
		delete(e.running, service)
	}
}

func (e *Engine) lockFor(service string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.held[service]
	if !ok {
		l = &sync.Mutex{}
		e.held[service] = l
	}
	return l
}

// Hold gives the caller (the monitor) the service to itself: it reports
// false when an operation runs on it; otherwise operations begun
// meanwhile wait until release is called.
func (e *Engine) Hold(service string) (release func(), ok bool) {
	if e.Busy(service) {
		return nil, false
	}
	l := e.lockFor(service)
	if !l.TryLock() {
		return nil, false
	}
	return l.Unlock, true
}

// Busy reports whether an operation runs on service.
func (e *Engine) Busy(service string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.running[service]
	return ok
}

// Resume finishes the operations a crash interrupted: each running one
// goes on at its recorded step, each rolling-back one goes on undoing.
// The agent calls it at start, before serving.
func (e *Engine) Resume(ctx context.Context) error {
	ops, err := e.Registry.Unfinished(ctx)
	if err != nil {
		return err
	}
	for _, op := range ops {
		e.log.Warn("resuming interrupted operation", "operation", op.ID, "service", op.Service, "kind", op.Kind,
			"state", op.State, "step", op.Step)
		e.mu.Lock()
		e.running[op.Service] = op.ID
		e.mu.Unlock()
		l := e.lockFor(op.Service)
		l.Lock()
		e.execute(ctx, op)
		l.Unlock()
		e.release(op.Service, op.ID)
	}
	return nil
}

// Wait blocks until every background operation has ended.
func (e *Engine) Wait() { e.wg.Wait() }

// execute runs (or resumes) op to its end. Steps run in ctx; the
// bookkeeping does not stop with it, and an agent stopping mid-step leaves
// the step recorded as the one to do again (or undo) at the next start.
func (e *Engine) execute(stepCtx context.Context, op registry.Operation) {
	ctx := context.WithoutCancel(stepCtx)
	r, err := e.load(ctx, op)
	if err != nil {
		e.finish(ctx, op, registry.OpFailed, fmt.Errorf("load operation: %w", err))
		return
	}
	steps := e.steps(op.Kind)
	if op.State == registry.OpRunning {
		for i := op.Step; i < len(steps); i++ {
			if err := e.Registry.SetStep(ctx, op.ID, registry.OpRunning, i); err != nil {
				e.finish(ctx, op, registry.OpFailed, err)
				return
			}
			op.Step = i
			if e.BeforeStep != nil {
				e.BeforeStep(op, steps[i].name)
			}
			e.event(ctx, op, steps[i].name, StepRunning, "")
			msg, err := steps[i].do(stepCtx, r)
			if err != nil && stepCtx.Err() != nil {
				e.log.Warn("agent stopping: operation left to resume at the next start", "operation", op.ID, "step", steps[i].name)
				return
			}
			if err != nil {
				err = fmt.Errorf("%s %s: %s: %w", op.Kind, op.Service, steps[i].name, err)
				e.event(ctx, op, steps[i].name, StepFailed, err.Error())
				_ = e.Registry.SetError(ctx, op.ID, err.Error())
				op.Error = err.Error()
				op.State = registry.OpRollingBack
				break
			}
			e.event(ctx, op, steps[i].name, StepDone, msg)
		}
		if op.State == registry.OpRunning {
			e.finish(ctx, op, registry.OpSucceeded, nil)
			return
		}
	}
	// Rolling back: undo from the failing (or interrupted) step down.
	for i := op.Step; i >= 0; i-- {
		if err := e.Registry.SetStep(ctx, op.ID, registry.OpRollingBack, i); err != nil {
			e.finish(ctx, op, registry.OpFailed, err)
			return
		}
		op.Step = i
		s := steps[i]
		if s.undo == nil {
			continue
		}
		if e.BeforeStep != nil {
			e.BeforeStep(op, "undo "+s.name)
		}
		e.event(ctx, op, s.name, StepUndoing, "")
		err := s.undo(stepCtx, r)
		if err != nil && stepCtx.Err() != nil {
			e.log.Warn("agent stopping: rollback left to resume at the next start", "operation", op.ID, "step", s.name)
			return
		}
		if err != nil {
			// An undo that fails is reported and the rollback goes on: the
			// monitor's orphan reaper and drift repair finish the job.
			e.log.Error("undo failed", "operation", op.ID, "service", op.Service, "step", s.name, "error", err)
			e.event(ctx, op, s.name, StepFailed, "undo: "+err.Error())
			continue
		}
		e.event(ctx, op, s.name, StepUndone, "")
	}
	state := registry.OpRolledBack
	if op.Kind != KindDeploy {
		state = registry.OpFailed
	}
	if op.Error == "" {
		if cur, err := e.Registry.Operation(ctx, op.ID); err == nil {
			op.Error = cur.Error
		}
	}
	if op.Kind == KindDeploy && op.PrevRevision == 0 {
		// A first deploy that rolled back leaves nothing: no service.
		if err := e.Registry.DeleteService(ctx, op.Service); err != nil {
			e.log.Error("forget rolled-back service", "service", op.Service, "error", err)
		}
	}
	e.finish(ctx, op, state, errors.New(op.Error))
}

func (e *Engine) finish(ctx context.Context, op registry.Operation, state string, cause error) {
	if err := e.Registry.FinishOperation(ctx, op.ID, state); err != nil {
		e.log.Error("record operation end", "operation", op.ID, "error", err)
	}
	msg := ""
	if cause != nil {
		msg = cause.Error()
		if op.Error == "" {
			_ = e.Registry.SetError(ctx, op.ID, msg)
		}
		e.log.Error("operation did not succeed", "operation", op.ID, "service", op.Service, "kind", op.Kind, "result", state, "error", msg)
	} else {
		e.log.Info("operation succeeded", "operation", op.ID, "service", op.Service, "kind", op.Kind, "revision", op.Revision)
	}
	ev, _ := e.Registry.AddEvent(ctx, registry.Event{Operation: op.ID, Service: op.Service, Kind: op.Kind, Step: "end", State: state, Message: msg})
	// The operation is over: whoever sees the final event may begin the
	// next one on the service (it waits for the service's lock, which the
	// caller of execute releases right after).
	e.release(op.Service, op.ID)
	e.broker.publish(Event{Event: ev, Final: true, Result: state, Error: msg})
}

func (e *Engine) event(ctx context.Context, op registry.Operation, step, state, msg string) {
	ev, err := e.Registry.AddEvent(ctx, registry.Event{Operation: op.ID, Service: op.Service, Kind: op.Kind, Step: step, State: state, Message: msg})
	if err != nil {
		e.log.Error("record event", "error", err)
	}
	e.log.Info("operation step", "operation", op.ID, "service", op.Service, "kind", op.Kind, "step", step, "state", state, "message", msg)
	e.broker.publish(Event{Event: ev})
}

// broker fans an operation's events out to its watchers.
type broker struct {
	mu   sync.Mutex
	subs map[int64][]chan Event
}

func (b *broker) subscribe(id int64) chan Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan Event, 256)
	b.subs[id] = append(b.subs[id], ch)
	return ch
}

// publish delivers ev to the operation's watchers without ever blocking
// the operation: a watcher that does not keep up loses progress events
// (the final event's result is also in the registry).
func (b *broker) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.subs[ev.Operation] {
		select {
		case ch <- ev:
		default:
		}
		if ev.Final {
			close(ch)
		}
	}
	if ev.Final {
		delete(b.subs, ev.Operation)
	}
}
