package identity

import (
	"crypto/sha256"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/token"
)

// maxVerified bounds the verified-token cache (well under a kilobyte an
// entry, so a few MiB when full).
const maxVerified = 10000

// verifiedTokens remembers, under the SHA-256 of each token that passed
// token.Parse, its claims and the token's database state as last read,
// so that a token presented again — every service asks about the same
// tokens over and over — skips the base64, the strict JSON decoding, the
// Ed25519 check and, while nothing has been committed since, the
// database read. Every answer stays as fresh as a read of the database:
//
//   - The claims cannot change for a given token string (its bytes fix
//     its signature). Expiry is checked again at every hit, and any change
//     of the signing key set (a rotation or a prune, loadKeys) empties the
//     cache.
//   - The state (revocation, the account's status, roles and credential
//     change) is used only while store.DataVersion, asked at every
//     validation, still equals the version read before the state was:
//     any commit since — a revocation, a disable, a password change, a
//     login, by this process or another — makes every entry's state
//     stale, and the next validation reads it again.
//
// Only tokens that parsed are stored, so a flood of forged or garbage
// tokens costs a full check each and takes no memory here; as in
// mcdsl/auth, the token itself is never kept, only its digest.
type verifiedTokens struct {
	mu      sync.RWMutex
	gen     uint64
	entries map[[sha256.Size]byte]verifiedEntry
}

// verifiedEntry is one token's claims and, when read, its state.
type verifiedEntry struct {
	claims token.Claims
	// state is the token's record and account as read after the database
	// was at version; nil until read, and when the token is not recorded
	// (missing). It is shared: never modified.
	state   *store.TokenState
	missing bool
	version int64
}

// read reports whether the entry holds what the database said at
// version.
func (e verifiedEntry) read(version int64) bool {
	return (e.state != nil || e.missing) && e.version == version
}

func newVerifiedTokens() *verifiedTokens {
	return &verifiedTokens{entries: make(map[[sha256.Size]byte]verifiedEntry)}
}

// get returns the entry of a token verified with the current keys that
// has not expired at now, and the key-set generation: hand it to put, so
// that a parse racing a key change is not stored.
func (v *verifiedTokens) get(key [sha256.Size]byte, now time.Time) (verifiedEntry, uint64, bool) {
	v.mu.RLock()
	e, ok := v.entries[key]
	gen := v.gen
	v.mu.RUnlock()
	if !ok || !now.Before(e.claims.ExpiresAt) {
		return verifiedEntry{}, gen, false
	}
	return e, gen, true
}

// put stores e for a token token.Parse accepted with the keys of
// generation gen; nothing if the keys have changed since. When the cache
// is full, expired entries go first, then arbitrary ones (map order),
// down to seven eighths, so inserts stay cheap on average.
func (v *verifiedTokens) put(key [sha256.Size]byte, e verifiedEntry, gen uint64, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if gen != v.gen {
		return
	}
	if _, ok := v.entries[key]; !ok && len(v.entries) >= maxVerified {
		for k, old := range v.entries {
			if !now.Before(old.claims.ExpiresAt) {
				delete(v.entries, k)
			}
		}
		for k := range v.entries {
			if len(v.entries) <= maxVerified*7/8 {
				break
			}
			delete(v.entries, k)
		}
	}
	v.entries[key] = e
}

// keysChanged starts a new generation and drops every entry: none was
// verified with the new key set.
func (v *verifiedTokens) keysChanged() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	clear(v.entries)
}

// len is the number of entries (tests).
func (v *verifiedTokens) len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.entries)
}
