package kvstore

import (
	"context"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// EAB implements acme.Store.
func (st Store) EAB(ctx context.Context, kid string) (acme.EAB, error) {
	return get[acme.EAB](ctx, st.s, kindEAB, kid)
}

// PutEAB implements acme.Store.
func (st Store) PutEAB(ctx context.Context, e acme.EAB) error {
	return put(ctx, st.s, kindEAB, e.KID, e)
}

// EABs implements acme.Store.
func (st Store) EABs(ctx context.Context) ([]acme.EAB, error) {
	return all[acme.EAB](ctx, st.s, kindEAB)
}
