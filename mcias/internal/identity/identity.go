package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"

	"git.metacircular.net/metacircular/mcias/internal/password"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/throttle"
	"git.metacircular.net/metacircular/mcias/internal/token"
)

// Config tunes the service.
type Config struct {
	// Issuer is the iss claim of every token.
	Issuer string
	// HumanTTL is the lifetime of login tokens; SystemTTL of system tokens.
	HumanTTL, SystemTTL time.Duration
	// Argon2 are the password hashing parameters for new hashes.
	Argon2 password.Params
	// AccountFailures and IPFailures are the failed-login limits per
	// ThrottleWindow.
	AccountFailures, IPFailures int
	ThrottleWindow              time.Duration
	// Argon2Slots bounds how many Argon2id computations (logins, password
	// changes and resets, account creation, the unknown-user equalizer)
	// run at once; 0 sizes it from the CPUs and memory
	// (password.AutoSlots with password.MemoryBudgetKiB).
	Argon2Slots int
	// Argon2MaxWait is how long a request waits for an Argon2 slot before
	// it is answered ErrBusy (0: password.DefaultMaxWait).
	Argon2MaxWait time.Duration
	// HashHook, when set, runs inside every Argon2 slot before the work
	// (tests hold a slot with it). Nil in production.
	HashHook func()
	// Now overrides the clock (tests).
	Now func() time.Time
}

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if c.Issuer == "" {
		c.Issuer = "mcias"
	}
	if c.HumanTTL == 0 {
		c.HumanTTL = 12 * time.Hour
	}
	if c.SystemTTL == 0 {
		c.SystemTTL = 365 * 24 * time.Hour
	}
	if c.Argon2 == (password.Params{}) {
		c.Argon2 = password.DefaultParams()
	}
	if c.AccountFailures == 0 {
		c.AccountFailures = 10
	}
	if c.IPFailures == 0 {
		c.IPFailures = 50
	}
	if c.ThrottleWindow == 0 {
		c.ThrottleWindow = 15 * time.Minute
	}
	if c.Argon2Slots == 0 {
		c.Argon2Slots = password.AutoSlots(c.Argon2, password.MemoryBudgetKiB(), runtime.GOMAXPROCS(0))
	}
	if c.Argon2MaxWait == 0 {
		c.Argon2MaxWait = password.DefaultMaxWait
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service is the MCIAS domain.
type Service struct {
	st        *store.Store
	cfg       Config
	logger    *slog.Logger
	equalizer *password.Equalizer
	gate      *password.Gate
	acct, ip  *throttle.Limiter

	mu     sync.RWMutex
	keys   map[string]token.Key
	active token.Key
	// verified remembers tokens that passed token.Parse, with their
	// database state as of a data version (verified.go); it is emptied
	// whenever keys change.
	verified *verifiedTokens
}

// New loads the signing keys (creating the first one) and returns the service.
func New(ctx context.Context, st *store.Store, cfg Config, logger *slog.Logger) (*Service, error) {
	cfg.Defaults()
	if err := cfg.Argon2.Validate(); err != nil {
		return nil, fmt.Errorf("identity: argon2: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	eq, err := password.NewEqualizer(cfg.Argon2)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s := &Service{
		st: st, cfg: cfg, logger: logger, equalizer: eq,
		gate: password.NewGate(password.GateOptions{Slots: cfg.Argon2Slots, MaxWait: cfg.Argon2MaxWait, Hold: cfg.HashHook}),
		acct: throttle.New(cfg.AccountFailures, cfg.ThrottleWindow, cfg.Now, true),
		ip:   throttle.New(cfg.IPFailures, cfg.ThrottleWindow, cfg.Now, false),

		verified: newVerifiedTokens(),
	}
	logger.Info("argon2 concurrency", "slots", s.gate.Slots(), "max_wait", s.gate.MaxWait().String(),
		"memory_kib_each", cfg.Argon2.Memory)
	if err := s.loadKeys(ctx); err != nil {
		return nil, err
	}
	if s.active.Private == nil {
		if _, err := s.RotateKey(ctx, nil); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Prune deletes expired token records, expired SSO codes and inactive keys
// older than the longest token lifetime (nothing they signed can still be
// valid).
func (s *Service) Prune(ctx context.Context) error {
	now := s.now()
	if _, err := s.st.PruneTokens(ctx, now); err != nil {
		return err
	}
	if _, err := s.st.PruneSSOCodes(ctx, now); err != nil {
		return err
	}
	maxTTL := max(s.cfg.HumanTTL, s.cfg.SystemTTL)
	n, err := s.st.DeleteKeysBefore(ctx, now.Add(-maxTTL))
	if err != nil {
		return err
	}
	if n > 0 {
		return s.loadKeys(ctx)
	}
	return nil
}

func mapStore(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

func newAccountID() string { return uuid.NewString() }
