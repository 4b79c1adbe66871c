package barrier

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/seal"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// SysOwner owns the system values (the policy).
const SysOwner = "sys"

// The barrier's errors.
var (
	// ErrNotInitialized: no unseal password has been set.
	ErrNotInitialized = apierr.New(apierr.Precondition, "metacrypt is not initialized (run metacryptctl init)")
	// ErrWrongPassword: the password does not open the master key.
	ErrWrongPassword = apierr.Opaque(apierr.Denied, "wrong unseal password")
	// ErrThrottled: too many recent failures; wrapped with the wait.
	ErrThrottled = apierr.Opaque(apierr.Throttled, "too many failed unseal attempts; wait and try again")
	// ErrTampered: a stored key does not decrypt under the right key —
	// the database was altered or is corrupt.
	ErrTampered = errors.New("stored key material does not decrypt (database altered or corrupt)")
)

// Options configure a Barrier.
type Options struct {
	// Params are the Argon2id parameters for a new password (init and
	// change); unseal uses the stored ones.
	Params   seal.Params
	Throttle seal.Throttle
	Logger   *slog.Logger
	Now      func() time.Time
}

// Barrier is the key hierarchy. It is safe for concurrent use.
type Barrier struct {
	st       *store.Store
	params   seal.Params
	throttle seal.Throttle
	logger   *slog.Logger
	now      func() time.Time

	// attempt serializes password attempts: each costs an Argon2id
	// derivation, whose memory must not be multiplied by concurrency.
	attempt sync.Mutex

	// mu guards the key material. Operations hold it for reading while
	// they use a key, so Seal (which takes it for writing) never clears a
	// key in use.
	mu      sync.RWMutex
	mek     []byte
	version int64
	keys    map[string][]byte
}

// New returns a sealed barrier over st.
func New(st *store.Store, o Options) *Barrier {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Throttle == (seal.Throttle{}) {
		o.Throttle = seal.DefaultThrottle
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Barrier{st: st, params: o.Params.WithDefaults(), throttle: o.Throttle, logger: o.Logger, now: o.Now}
}

// Status is the barrier's state.
type Status struct {
	Initialized bool
	Sealed      bool
	KeyVersion  int64
	// RetryAfter is how long password attempts are refused now.
	RetryAfter time.Duration
}

// Status reports the barrier's state.
func (b *Barrier) Status(ctx context.Context) (Status, error) {
	st, err := b.st.SealState(ctx)
	if errors.Is(err, engine.ErrNotFound) {
		return Status{Sealed: true}, nil
	}
	if err != nil {
		return Status{}, err
	}
	n, last, err := b.st.Failures(ctx)
	if err != nil {
		return Status{}, err
	}
	return Status{Initialized: true, Sealed: b.Sealed(), KeyVersion: st.KeyVersion, RetryAfter: b.throttle.Wait(n, last, b.now())}, nil
}

// Sealed reports whether the barrier is sealed.
func (b *Barrier) Sealed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.mek == nil
}

func randomKey() ([]byte, error) {
	k := make([]byte, seal.KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("draw key: %w", err)
	}
	return k, nil
}

// Init sets the unseal password on an uninitialized barrier: a new MEK
// (version 1) wrapped under the password's key, and the system DEK. The
// barrier is left unsealed. engine.ErrConflict if it is initialized.
func (b *Barrier) Init(ctx context.Context, password []byte) error {
	if err := seal.CheckNewPassword(password); err != nil {
		return apierr.InvalidField("password", "%v", err)
	}
	b.attempt.Lock()
	defer b.attempt.Unlock()
	if _, err := b.st.SealState(ctx); err == nil {
		return fmt.Errorf("%w: metacrypt is initialized", engine.ErrConflict)
	} else if !errors.Is(err, engine.ErrNotFound) {
		return err
	}
	salt, err := seal.NewSalt()
	if err != nil {
		return err
	}
	kek, err := seal.KEK(password, salt, b.params)
	if err != nil {
		return err
	}
	defer clear(kek)
	mek, err := randomKey()
	if err != nil {
		return err
	}
	sys, err := randomKey()
	if err != nil {
		clear(mek)
		return err
	}
	const version = 1
	wrappedMEK, err1 := encrypt(kek, mek, mekAAD(version))
	wrappedSys, err2 := encrypt(mek, sys, dekAAD(SysOwner, version))
	params, err3 := json.Marshal(b.params)
	if err := errors.Join(err1, err2, err3); err != nil {
		clear(mek)
		clear(sys)
		return err
	}
	if err := b.st.Initialize(ctx, store.SealState{KeyVersion: version, Salt: salt, Params: params, WrappedMEK: wrappedMEK}, SysOwner, wrappedSys); err != nil {
		clear(mek)
		clear(sys)
		return err
	}
	b.mu.Lock()
	b.zeroLocked()
	b.mek, b.version, b.keys = mek, version, map[string][]byte{SysOwner: sys}
	b.mu.Unlock()
	b.logger.Info("barrier initialized and unsealed", "key_version", version)
	return nil
}

// openMEK checks the throttle, derives the key from password and opens
// the stored MEK, counting a failure or clearing the count. The caller
// holds b.attempt and clears the returned key.
func (b *Barrier) openMEK(ctx context.Context, password []byte) ([]byte, store.SealState, error) {
	st, err := b.st.SealState(ctx)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, st, ErrNotInitialized
	}
	if err != nil {
		return nil, st, err
	}
	n, last, err := b.st.Failures(ctx)
	if err != nil {
		return nil, st, err
	}
	if wait := b.throttle.Wait(n, last, b.now()); wait > 0 {
		return nil, st, apierr.WithRetry(ErrThrottled, wait)
	}
	var params seal.Params
	if err := json.Unmarshal(st.Params, &params); err != nil {
		return nil, st, fmt.Errorf("stored argon2 parameters: %w", err)
	}
	kek, err := seal.KEK(password, st.Salt, params)
	if err != nil {
		return nil, st, err
	}
	defer clear(kek)
	mek, err := decrypt(kek, st.WrappedMEK, mekAAD(st.KeyVersion))
	if err != nil {
		if rerr := b.st.RecordFailure(ctx, b.now()); rerr != nil {
			return nil, st, rerr
		}
		b.logger.Warn("unseal password refused", "failures", n+1)
		return nil, st, ErrWrongPassword
	}
	if n > 0 {
		if err := b.st.ResetFailures(ctx); err != nil {
			clear(mek)
			return nil, st, err
		}
	}
	return mek, st, nil
}

// Unseal opens the barrier with the password: the MEK, then every DEK.
// Failures are throttled (ErrThrottled with a retry delay). Unsealing an
// unsealed barrier does nothing and checks nothing.
func (b *Barrier) Unseal(ctx context.Context, password []byte) error {
	b.attempt.Lock()
	defer b.attempt.Unlock()
	if !b.Sealed() {
		return nil
	}
	mek, st, err := b.openMEK(ctx, password)
	if err != nil {
		return err
	}
	keys, err := b.openDataKeys(ctx, mek, st.KeyVersion)
	if err != nil {
		clear(mek)
		return err
	}
	b.mu.Lock()
	b.zeroLocked()
	b.mek, b.version, b.keys = mek, st.KeyVersion, keys
	b.mu.Unlock()
	b.logger.Info("barrier unsealed", "key_version", st.KeyVersion, "data_keys", len(keys))
	return nil
}

func (b *Barrier) openDataKeys(ctx context.Context, mek []byte, version int64) (map[string][]byte, error) {
	wrapped, versions, err := b.st.DataKeys(ctx)
	if err != nil {
		return nil, err
	}
	keys := make(map[string][]byte, len(wrapped))
	for owner, w := range wrapped {
		k, err := decrypt(mek, w, dekAAD(owner, versions[owner]))
		if err != nil || versions[owner] != version {
			for _, k := range keys {
				clear(k)
			}
			return nil, fmt.Errorf("data key of %s: %w", owner, ErrTampered)
		}
		keys[owner] = k
	}
	return keys, nil
}

// Seal zeroizes the MEK and every DEK. Operations in progress finish
// first; later ones fail with engine.ErrSealed.
func (b *Barrier) Seal() {
	b.mu.Lock()
	wasOpen := b.mek != nil
	b.zeroLocked()
	b.mu.Unlock()
	if wasOpen {
		b.logger.Info("barrier sealed; key material zeroized")
	}
}

func (b *Barrier) zeroLocked() {
	clear(b.mek)
	for _, k := range b.keys {
		clear(k)
	}
	b.mek, b.keys, b.version = nil, nil, 0
}

// ChangePassword re-wraps the MEK under a key derived from a new password
// and a new salt, with the configured Argon2id parameters. The current
// password is required (and throttled); nothing else changes.
func (b *Barrier) ChangePassword(ctx context.Context, current, next []byte) error {
	if err := seal.CheckNewPassword(next); err != nil {
		return apierr.InvalidField("new_password", "%v", err)
	}
	b.attempt.Lock()
	defer b.attempt.Unlock()
	mek, st, err := b.openMEK(ctx, current)
	if err != nil {
		return err
	}
	defer clear(mek)
	salt, err := seal.NewSalt()
	if err != nil {
		return err
	}
	kek, err := seal.KEK(next, salt, b.params)
	if err != nil {
		return err
	}
	defer clear(kek)
	wrapped, err := encrypt(kek, mek, mekAAD(st.KeyVersion))
	if err != nil {
		return err
	}
	params, err := json.Marshal(b.params)
	if err != nil {
		return err
	}
	if err := b.st.ReplaceMEK(ctx, st.KeyVersion, salt, params, wrapped); err != nil {
		return err
	}
	b.logger.Info("unseal password changed", "key_version", st.KeyVersion)
	return nil
}

// Rotate replaces the MEK with a new one (version+1) and re-wraps every
// DEK under it, in one transaction. The barrier must be unsealed; the
// password is needed to wrap the new MEK (the barrier never keeps the
// password's key).
func (b *Barrier) Rotate(ctx context.Context, password []byte) (int64, error) {
	b.attempt.Lock()
	defer b.attempt.Unlock()
	if b.Sealed() {
		return 0, engine.ErrSealed
	}
	old, st, err := b.openMEK(ctx, password)
	if err != nil {
		return 0, err
	}
	clear(old)
	var params seal.Params
	if err := json.Unmarshal(st.Params, &params); err != nil {
		return 0, fmt.Errorf("stored argon2 parameters: %w", err)
	}
	kek, err := seal.KEK(password, st.Salt, params)
	if err != nil {
		return 0, err
	}
	defer clear(kek)
	mek, err := randomKey()
	if err != nil {
		return 0, err
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mek == nil {
		clear(mek)
		return 0, engine.ErrSealed
	}
	next := st.KeyVersion + 1
	wrappedMEK, err := encrypt(kek, mek, mekAAD(next))
	if err != nil {
		clear(mek)
		return 0, err
	}
	rewrapped := make(map[string][]byte, len(b.keys))
	for owner, k := range b.keys {
		w, err := encrypt(mek, k, dekAAD(owner, next))
		if err != nil {
			clear(mek)
			return 0, err
		}
		rewrapped[owner] = w
	}
	if err := b.st.Rotate(ctx, st.KeyVersion, wrappedMEK, rewrapped); err != nil {
		clear(mek)
		return 0, err
	}
	clear(b.mek)
	b.mek, b.version = mek, next
	b.logger.Info("master key rotated", "key_version", next, "data_keys", len(rewrapped))
	return next, nil
}
