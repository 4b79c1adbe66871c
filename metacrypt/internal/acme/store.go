package acme

import "context"

// Store is one CA mount's ACME state. Every method fails with
// engine.ErrSealed while sealed; a missing object is engine.ErrNotFound.
// Stores do no locking: the Service serializes changes to an object.
type Store interface {
	EAB(ctx context.Context, kid string) (EAB, error)
	PutEAB(ctx context.Context, e EAB) error
	EABs(ctx context.Context) ([]EAB, error)

	Account(ctx context.Context, id string) (Account, error)
	PutAccount(ctx context.Context, a Account) error
	// AccountByKey is the ID of the account with a key thumbprint.
	AccountByKey(ctx context.Context, thumbprint string) (string, error)
	PutAccountKey(ctx context.Context, thumbprint, id string) error
	DeleteAccountKey(ctx context.Context, thumbprint string) error
	// AccountOrders lists an account's order IDs, oldest first;
	// AddAccountOrder appends one, keeping the newest max.
	AccountOrders(ctx context.Context, account string) ([]string, error)
	AddAccountOrder(ctx context.Context, account, order string, max int) error

	Order(ctx context.Context, id string) (Order, error)
	PutOrder(ctx context.Context, o Order) error
	Authz(ctx context.Context, id string) (Authz, error)
	PutAuthz(ctx context.Context, a Authz) error

	Cert(ctx context.Context, serial string) (Cert, error)
	PutCert(ctx context.Context, c Cert) error

	Jobs(ctx context.Context) ([]Job, error)
	PutJob(ctx context.Context, j Job) error
	DeleteJob(ctx context.Context, authz string) error

	PutNonce(ctx context.Context, nonce string) error
	// TakeNonce deletes a nonce, reporting whether it was there.
	TakeNonce(ctx context.Context, nonce string) (bool, error)
	// Nonces lists the stored nonces, in the order they sort.
	Nonces(ctx context.Context) ([]string, error)
	DeleteNonce(ctx context.Context, nonce string) error
}
