package kvstore

import (
	"context"
	"encoding/json"
	"fmt"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// The storage kinds.
const (
	kindEAB           = "acme/eab"
	kindAccount       = "acme/account"
	kindAccountKey    = "acme/account-key"
	kindAccountOrders = "acme/account-orders"
	kindOrder         = "acme/order"
	kindAuthz         = "acme/authz"
	kindCert          = "acme/cert"
	kindJob           = "acme/job"
	kindNonce         = "acme/nonce"
)

// Store is acme.Store over one mount's storage.
type Store struct {
	s engine.Storage
}

var _ acme.Store = Store{}

// New returns the ACME state of the mount whose storage s is.
func New(s engine.Storage) acme.Store { return Store{s: s} }

func get[T any](ctx context.Context, s engine.Storage, kind, key string) (T, error) {
	var v T
	b, err := s.Get(ctx, kind, key)
	if err != nil {
		return v, err
	}
	defer clear(b)
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("decode %s %s: %w", kind, key, err)
	}
	return v, nil
}

func put(ctx context.Context, s engine.Storage, kind, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", kind, key, err)
	}
	defer clear(b)
	return s.Put(ctx, kind, key, b)
}

func all[T any](ctx context.Context, s engine.Storage, kind string) ([]T, error) {
	keys, err := s.List(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		v, err := get[T](ctx, s, kind, k)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
