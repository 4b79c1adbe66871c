package kvstore

import (
	"context"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// PutNonce implements acme.Store. The value is empty: the key is the
// nonce.
func (st Store) PutNonce(ctx context.Context, nonce string) error {
	return st.s.Put(ctx, kindNonce, nonce, nil)
}

// TakeNonce implements acme.Store.
func (st Store) TakeNonce(ctx context.Context, nonce string) (bool, error) {
	if _, err := st.s.Get(ctx, kindNonce, nonce); err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			return false, nil
		}
		return false, err
	}
	return true, st.s.Delete(ctx, kindNonce, nonce)
}

// Nonces implements acme.Store.
func (st Store) Nonces(ctx context.Context) ([]string, error) { return st.s.List(ctx, kindNonce) }

// DeleteNonce implements acme.Store.
func (st Store) DeleteNonce(ctx context.Context, nonce string) error {
	return st.s.Delete(ctx, kindNonce, nonce)
}
