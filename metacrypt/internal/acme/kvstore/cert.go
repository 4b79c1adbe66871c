package kvstore

import (
	"context"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// Cert implements acme.Store.
func (st Store) Cert(ctx context.Context, serial string) (acme.Cert, error) {
	return get[acme.Cert](ctx, st.s, kindCert, serial)
}

// PutCert implements acme.Store.
func (st Store) PutCert(ctx context.Context, c acme.Cert) error {
	return put(ctx, st.s, kindCert, c.Serial, c)
}
