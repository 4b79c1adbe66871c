package kvstore

import (
	"context"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// Jobs implements acme.Store: the validation queue, one job per
// authorization.
func (st Store) Jobs(ctx context.Context) ([]acme.Job, error) {
	return all[acme.Job](ctx, st.s, kindJob)
}

// PutJob implements acme.Store.
func (st Store) PutJob(ctx context.Context, j acme.Job) error {
	return put(ctx, st.s, kindJob, j.Authz, j)
}

// DeleteJob implements acme.Store.
func (st Store) DeleteJob(ctx context.Context, authz string) error {
	return st.s.Delete(ctx, kindJob, authz)
}
