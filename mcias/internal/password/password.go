package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MaxLength is the longest password accepted, in bytes. Argon2 hashes any
// length, but an unbounded input is free work for an attacker, and no
// passphrase needs more.
const MaxLength = 1024

// Bounds checked by Params.Validate, and so applied to every stored hash
// Verify reads: the lower ones keep hashes meaningfully slow, the upper ones
// stop a corrupted or hostile hash string from making Verify allocate or
// compute without limit.
const (
	minMemory       = 8 * 1024        // KiB: 8 MiB
	maxMemory       = 4 * 1024 * 1024 // KiB: 4 GiB
	minIterations   = 1
	maxIterations   = 64
	minParallelism  = 1
	maxParallelism  = 64
	minSaltLength   = 16
	maxSaltLength   = 64
	minKeyLength    = 16
	maxKeyLength    = 64
	maxEncodedBytes = 256
)

// Errors returned by Hash and Verify, checked with errors.Is.
var (
	ErrEmpty         = errors.New("empty password")
	ErrTooLong       = fmt.Errorf("password longer than %d bytes", MaxLength)
	ErrMalformedHash = errors.New("malformed password hash")
)

// Params are Argon2id cost parameters.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLength  uint32 // bytes
	KeyLength   uint32 // bytes
}

// DefaultParams returns the parameters new hashes use: 64 MiB, 3 passes,
// 2 lanes, a 16-byte salt and a 32-byte hash. This is RFC 9106 §4's second
// recommended setting (for memory-constrained hosts) with the lanes matched
// to the 2 cores of a small server: roughly a tenth of a second per login
// there, and a bounded 64 MiB for each one in flight.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Iterations: 3, Parallelism: 2, SaltLength: 16, KeyLength: 32}
}

// Validate reports whether p is within sane bounds: Memory 8 MiB..4 GiB,
// Iterations 1..64, Parallelism 1..64, SaltLength and KeyLength 16..64.
func (p Params) Validate() error {
	switch {
	case p.Memory < minMemory || p.Memory > maxMemory:
		return fmt.Errorf("argon2 params: memory %d KiB outside %d..%d", p.Memory, minMemory, maxMemory)
	case p.Iterations < minIterations || p.Iterations > maxIterations:
		return fmt.Errorf("argon2 params: iterations %d outside %d..%d", p.Iterations, minIterations, maxIterations)
	case p.Parallelism < minParallelism || p.Parallelism > maxParallelism:
		return fmt.Errorf("argon2 params: parallelism %d outside %d..%d", p.Parallelism, minParallelism, maxParallelism)
	case p.SaltLength < minSaltLength || p.SaltLength > maxSaltLength:
		return fmt.Errorf("argon2 params: salt length %d outside %d..%d", p.SaltLength, minSaltLength, maxSaltLength)
	case p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength:
		return fmt.Errorf("argon2 params: key length %d outside %d..%d", p.KeyLength, minKeyLength, maxKeyLength)
	}
	return nil
}

// Hash returns the PHC string of password hashed with p and a fresh random
// salt. It refuses an empty password and one longer than MaxLength.
func Hash(password string, p Params) (string, error) {
	if password == "" {
		return "", fmt.Errorf("hash password: %w", ErrEmpty)
	}
	if len(password) > MaxLength {
		return "", fmt.Errorf("hash password: %w", ErrTooLong)
	}
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, p.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: salt: %w", err)
	}
	key := derive(password, salt, p)
	defer clear(key)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches the PHC string encoded, comparing
// in constant time. The error is only for an encoded string that is not a
// well-formed Argon2id hash within Params.Validate's bounds; a wrong
// password is (false, nil). An empty password or one longer than MaxLength
// is false at once, without hashing: no stored hash can match it.
func Verify(password, encoded string) (ok bool, err error) {
	h, err := decode(encoded)
	if err != nil {
		return false, err
	}
	if password == "" || len(password) > MaxLength {
		return false, nil
	}
	key := derive(password, h.salt, h.params)
	defer clear(key)
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// NeedsRehash reports whether encoded was made with parameters other than p
// (or cannot be read), so the caller should store a fresh Hash after the
// next successful login.
func NeedsRehash(encoded string, p Params) bool {
	h, err := decode(encoded)
	return err != nil || h.params != p
}

// Equalizer makes the unknown-user path of a login cost the same as a wrong
// password: it holds a hash of a random password made with the current
// parameters, and Burn verifies against it.
type Equalizer struct {
	encoded string
}

// NewEqualizer returns an Equalizer whose hash uses p, which should be the
// parameters real hashes are made with.
func NewEqualizer(p Params) (*Equalizer, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("new equalizer: %w", err)
	}
	encoded, err := Hash(hex.EncodeToString(b), p)
	if err != nil {
		return nil, fmt.Errorf("new equalizer: %w", err)
	}
	return &Equalizer{encoded: encoded}, nil
}

// Burn does the work of Verify(password, hash) and discards the answer.
func (e *Equalizer) Burn(password string) {
	_, _ = Verify(password, e.encoded)
}

func derive(password string, salt []byte, p Params) []byte {
	pw := []byte(password)
	defer clear(pw)
	return argon2.IDKey(pw, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
}

type hash struct {
	params    Params
	salt, key []byte
}

// decode parses exactly the form Hash writes. Anything else — another
// variant or version, reordered or extra parameters, non-canonical numbers
// or base64, parameters outside Validate's bounds — is ErrMalformedHash.
func decode(encoded string) (hash, error) {
	if len(encoded) > maxEncodedBytes || strings.ContainsAny(encoded, "\r\n") {
		return hash{}, fmt.Errorf("%w: not a single short line", ErrMalformedHash)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return hash{}, fmt.Errorf("%w: want $argon2id$v=19$m=M,t=T,p=P$salt$hash", ErrMalformedHash)
	}
	if parts[1] != "argon2id" {
		return hash{}, fmt.Errorf("%w: variant %.16q is not argon2id", ErrMalformedHash, parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return hash{}, fmt.Errorf("%w: version %.16q is not v=%d", ErrMalformedHash, parts[2], argon2.Version)
	}
	m, t, par, err := parseCosts(parts[3])
	if err != nil {
		return hash{}, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	p := Params{Memory: m, Iterations: t, Parallelism: par}
	salt, err := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	if err != nil {
		return hash{}, fmt.Errorf("%w: salt: %w", ErrMalformedHash, err)
	}
	key, err := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil {
		return hash{}, fmt.Errorf("%w: hash: %w", ErrMalformedHash, err)
	}
	saltLen, keyLen := len(salt), len(key)
	if saltLen < minSaltLength || saltLen > maxSaltLength {
		return hash{}, fmt.Errorf("%w: salt length %d outside %d..%d", ErrMalformedHash, saltLen, minSaltLength, maxSaltLength)
	}
	if keyLen < minKeyLength || keyLen > maxKeyLength {
		return hash{}, fmt.Errorf("%w: hash length %d outside %d..%d", ErrMalformedHash, keyLen, minKeyLength, maxKeyLength)
	}
	p.SaltLength, p.KeyLength = uint32(saltLen), uint32(keyLen)
	if err := p.Validate(); err != nil {
		return hash{}, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	return hash{params: p, salt: salt, key: key}, nil
}

// parseCosts parses "m=M,t=T,p=P" in that order, each a canonical decimal.
func parseCosts(s string) (m, t uint32, p uint8, err error) {
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return 0, 0, 0, fmt.Errorf("parameters %.32q: want m=M,t=T,p=P", s)
	}
	var digits [3]string
	for i, name := range []string{"m=", "t=", "p="} {
		d, ok := strings.CutPrefix(fields[i], name)
		// ParseUint takes leading zeros; a canonical number has none.
		if !ok || d == "" || len(d) > 1 && d[0] == '0' {
			return 0, 0, 0, fmt.Errorf("parameters %.32q: want m=M,t=T,p=P", s)
		}
		digits[i] = d
	}
	mv, errM := strconv.ParseUint(digits[0], 10, 32)
	tv, errT := strconv.ParseUint(digits[1], 10, 32)
	pv, errP := strconv.ParseUint(digits[2], 10, 8)
	if err := errors.Join(errM, errT, errP); err != nil {
		return 0, 0, 0, fmt.Errorf("parameters %.32q: %w", s, err)
	}
	return uint32(mv), uint32(tv), uint8(pv), nil
}
