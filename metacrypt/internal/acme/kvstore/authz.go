package kvstore

import (
	"context"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// Authz implements acme.Store.
func (st Store) Authz(ctx context.Context, id string) (acme.Authz, error) {
	return get[acme.Authz](ctx, st.s, kindAuthz, id)
}

// PutAuthz implements acme.Store.
func (st Store) PutAuthz(ctx context.Context, a acme.Authz) error {
	return put(ctx, st.s, kindAuthz, a.ID, a)
}
