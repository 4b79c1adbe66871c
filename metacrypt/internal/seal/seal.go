// Package seal turns the unseal password into the key-encryption key
// (Argon2id with stored parameters and salt) and decides when an unseal
// attempt may be made (the throttle). It knows nothing of what the key
// opens: that is the barrier's business.
package seal

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/argon2"
)

// KeySize is the size of every key in the hierarchy (AES-256).
const KeySize = 32

// SaltSize is the Argon2id salt size.
const SaltSize = 16

// MinPasswordLength is the shortest unseal password accepted.
const MinPasswordLength = 12

// Params are the Argon2id cost parameters. The ones in force when the
// password was set are stored beside the wrapped master key, so changing
// the configuration affects only the next init or password change.
type Params struct {
	// MemoryKiB is the memory cost in KiB (default 65536, 64 MiB).
	MemoryKiB uint32 `toml:"argon2_memory_kib" json:"memory_kib"`
	// Iterations is the time cost (default 3).
	Iterations uint32 `toml:"argon2_iterations" json:"iterations"`
	// Parallelism is the lanes (default 4).
	Parallelism uint8 `toml:"argon2_parallelism" json:"parallelism"`
}

// DefaultParams are RFC 9106's second recommended option, scaled to a
// small server: 64 MiB, 3 passes, 4 lanes.
var DefaultParams = Params{MemoryKiB: 64 * 1024, Iterations: 3, Parallelism: 4}

// WithDefaults fills zero fields from DefaultParams.
func (p Params) WithDefaults() Params {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultParams.MemoryKiB
	}
	if p.Iterations == 0 {
		p.Iterations = DefaultParams.Iterations
	}
	if p.Parallelism == 0 {
		p.Parallelism = DefaultParams.Parallelism
	}
	return p
}

// Validate bounds the parameters: below 8 MiB or one pass the password is
// too cheap to guess; above 4 GiB or 64 passes an unseal takes too long.
func (p Params) Validate() error {
	switch {
	case p.MemoryKiB < 8*1024 || p.MemoryKiB > 4*1024*1024:
		return fmt.Errorf("argon2_memory_kib must be 8192..4194304, got %d", p.MemoryKiB)
	case p.Iterations < 1 || p.Iterations > 64:
		return fmt.Errorf("argon2_iterations must be 1..64, got %d", p.Iterations)
	case p.Parallelism < 1 || p.Parallelism > 64:
		return fmt.Errorf("argon2_parallelism must be 1..64, got %d", p.Parallelism)
	}
	return nil
}

// NewSalt draws a random salt.
func NewSalt() ([]byte, error) {
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("draw salt: %w", err)
	}
	return salt, nil
}

// ErrPasswordTooShort refuses a new password below MinPasswordLength.
var ErrPasswordTooShort = fmt.Errorf("the unseal password must be at least %d characters", MinPasswordLength)

// CheckNewPassword checks a password about to be set.
func CheckNewPassword(pw []byte) error {
	if len(pw) < MinPasswordLength {
		return ErrPasswordTooShort
	}
	return nil
}

// KEK derives the key-encryption key from the password. The caller
// clears it after use.
func KEK(password, salt []byte, p Params) ([]byte, error) {
	if len(salt) != SaltSize {
		return nil, errors.New("derive key: bad salt")
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, KeySize), nil
}

// Throttle decides when an unseal (or password change) may be attempted
// after failures: the first FreeAttempts failures cost nothing, then each
// further failure doubles the wait, from Base up to Max. The counters are
// stored with the seal state, so a restart does not reset them.
type Throttle struct {
	FreeAttempts int
	Base, Max    time.Duration
}

// DefaultThrottle is three free attempts, then 1 s, 2 s, 4 s... up to
// 15 minutes.
var DefaultThrottle = Throttle{FreeAttempts: 3, Base: time.Second, Max: 15 * time.Minute}

// Wait is how long from now an attempt must wait after failures
// consecutive failures, the last at last (0: it may be made now).
func (t Throttle) Wait(failures int, last, now time.Time) time.Duration {
	if failures < t.FreeAttempts || last.IsZero() {
		return 0
	}
	d := t.Base
	for i := t.FreeAttempts; i < failures && d < t.Max; i++ {
		d *= 2
	}
	d = min(d, t.Max)
	if wait := last.Add(d).Sub(now); wait > 0 {
		return wait
	}
	return 0
}
