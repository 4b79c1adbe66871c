package kvstore

import (
	"context"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// Order implements acme.Store.
func (st Store) Order(ctx context.Context, id string) (acme.Order, error) {
	return get[acme.Order](ctx, st.s, kindOrder, id)
}

// PutOrder implements acme.Store.
func (st Store) PutOrder(ctx context.Context, o acme.Order) error {
	return put(ctx, st.s, kindOrder, o.ID, o)
}
