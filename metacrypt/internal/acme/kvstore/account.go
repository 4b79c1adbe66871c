package kvstore

import (
	"context"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// Account implements acme.Store.
func (st Store) Account(ctx context.Context, id string) (acme.Account, error) {
	return get[acme.Account](ctx, st.s, kindAccount, id)
}

// PutAccount implements acme.Store.
func (st Store) PutAccount(ctx context.Context, a acme.Account) error {
	return put(ctx, st.s, kindAccount, a.ID, a)
}

// AccountByKey implements acme.Store: the index from key thumbprint to
// account ID.
func (st Store) AccountByKey(ctx context.Context, thumbprint string) (string, error) {
	return get[string](ctx, st.s, kindAccountKey, thumbprint)
}

// PutAccountKey implements acme.Store.
func (st Store) PutAccountKey(ctx context.Context, thumbprint, id string) error {
	return put(ctx, st.s, kindAccountKey, thumbprint, id)
}

// DeleteAccountKey implements acme.Store.
func (st Store) DeleteAccountKey(ctx context.Context, thumbprint string) error {
	return st.s.Delete(ctx, kindAccountKey, thumbprint)
}

// AccountOrders implements acme.Store.
func (st Store) AccountOrders(ctx context.Context, account string) ([]string, error) {
	ids, err := get[[]string](ctx, st.s, kindAccountOrders, account)
	if apierr.KindOf(err) == apierr.NotFound {
		return []string{}, nil
	}
	return ids, err
}

// AddAccountOrder implements acme.Store.
func (st Store) AddAccountOrder(ctx context.Context, account, order string, limit int) error {
	ids, err := st.AccountOrders(ctx, account)
	if err != nil {
		return err
	}
	ids = append(ids, order)
	if len(ids) > limit {
		ids = ids[len(ids)-limit:]
	}
	return put(ctx, st.s, kindAccountOrders, account, ids)
}
