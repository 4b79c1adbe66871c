package identity

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/token"
)

// KeyInfo describes a signing key (public part only).
type KeyInfo struct {
	ID        string    `json:"kid"`
	CreatedAt time.Time `json:"created_at"`
	Active    bool      `json:"active"`
}

// RotateKey creates a new active signing key. Tokens signed by older keys
// stay valid until they expire. caller nil means the service itself (first
// start).
func (s *Service) RotateKey(ctx context.Context, caller *auth.Identity) (KeyInfo, error) {
	if caller != nil && !caller.IsAdmin() {
		return KeyInfo{}, ErrForbidden
	}
	k, err := token.NewKey(s.now())
	if err != nil {
		return KeyInfo{}, err
	}
	if err := s.st.AddKey(ctx, store.SigningKey{ID: k.ID, Private: k.Private, Public: k.Public, CreatedAt: k.CreatedAt, Active: true}); err != nil {
		return KeyInfo{}, err
	}
	if err := s.loadKeys(ctx); err != nil {
		return KeyInfo{}, err
	}
	by := "mcias"
	if caller != nil {
		by = caller.Username
	}
	s.logger.Info("signing key rotated", "kid", k.ID, "by", by)
	return KeyInfo{ID: k.ID, CreatedAt: k.CreatedAt, Active: true}, nil
}

// Keys lists the signing keys (admin only).
func (s *Service) Keys(ctx context.Context, caller *auth.Identity) ([]KeyInfo, error) {
	if !caller.IsAdmin() {
		return nil, ErrForbidden
	}
	stored, err := s.st.Keys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(stored))
	for _, k := range stored {
		out = append(out, KeyInfo{ID: k.ID, CreatedAt: k.CreatedAt, Active: k.Active})
	}
	return out, nil
}

// JWKS returns the public keys for /.well-known/jwks.json.
func (s *Service) JWKS() token.JWKSet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]token.Key, 0, len(s.keys))
	for _, k := range s.keys {
		keys = append(keys, token.Key{ID: k.ID, Public: k.Public, CreatedAt: k.CreatedAt})
	}
	slices.SortFunc(keys, func(a, b token.Key) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return token.JWKSFor(keys)
}

func (s *Service) loadKeys(ctx context.Context) error {
	stored, err := s.st.Keys(ctx)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	keys := map[string]token.Key{}
	var active token.Key
	for _, k := range stored {
		tk := token.Key{ID: k.ID, Public: ed25519.PublicKey(k.Public), Private: ed25519.PrivateKey(k.Private), CreatedAt: k.CreatedAt}
		keys[k.ID] = tk
		if k.Active {
			active = tk
		}
	}
	s.mu.Lock()
	s.keys, s.active = keys, active
	s.mu.Unlock()
	s.verified.keysChanged()
	return nil
}

func (s *Service) lookupKey(kid string) (ed25519.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[kid]
	return k.Public, ok
}
