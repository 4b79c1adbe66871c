package barrier

import (
	"context"
	"fmt"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// AddMount stores a mount with a new DEK wrapped under the MEK, and keeps
// the DEK for use. The barrier must be unsealed.
func (b *Barrier) AddMount(ctx context.Context, m store.MountRow) error {
	dek, err := randomKey()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mek == nil {
		clear(dek)
		return engine.ErrSealed
	}
	wrapped, err := encrypt(b.mek, dek, dekAAD(m.ID, b.version))
	if err != nil {
		clear(dek)
		return err
	}
	if err := b.st.CreateMount(ctx, m, b.version, wrapped); err != nil {
		clear(dek)
		return err
	}
	b.keys[m.ID] = dek
	return nil
}

// RemoveMount deletes a mount with its DEK and everything stored under
// it, and zeroizes the DEK. The barrier must be unsealed.
func (b *Barrier) RemoveMount(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mek == nil {
		return engine.ErrSealed
	}
	if err := b.st.DeleteMount(ctx, id); err != nil {
		return err
	}
	clear(b.keys[id])
	delete(b.keys, id)
	return nil
}

// View is one owner's encrypted storage. It implements engine.Storage.
type View struct {
	b     *Barrier
	owner string
}

var _ engine.Storage = (*View)(nil)

// View is the storage of an owner (a mount's ID, or SysOwner).
func (b *Barrier) View(owner string) *View { return &View{b: b, owner: owner} }

// withKey runs f with the owner's DEK, holding the read lock so Seal
// cannot clear it meanwhile.
func (v *View) withKey(f func(dek []byte) error) error {
	v.b.mu.RLock()
	defer v.b.mu.RUnlock()
	if v.b.mek == nil {
		return engine.ErrSealed
	}
	dek, ok := v.b.keys[v.owner]
	if !ok {
		return fmt.Errorf("%w: no data key for %s", engine.ErrNotFound, v.owner)
	}
	return f(dek)
}

// Get decrypts one value. A value that does not decrypt (altered, or
// copied from another row) is an error wrapping ErrTampered.
func (v *View) Get(ctx context.Context, kind, key string) ([]byte, error) {
	if v.b.Sealed() {
		return nil, engine.ErrSealed
	}
	blob, err := v.b.st.Secret(ctx, v.owner, kind, key)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = v.withKey(func(dek []byte) error {
		pt, err := decrypt(dek, blob, rowAAD(v.owner, kind, key))
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", v.owner, kind, key, ErrTampered)
		}
		out = pt
		return nil
	})
	return out, err
}

// Put encrypts and stores one value.
func (v *View) Put(ctx context.Context, kind, key string, value []byte) error {
	var blob []byte
	if err := v.withKey(func(dek []byte) error {
		var err error
		blob, err = encrypt(dek, value, rowAAD(v.owner, kind, key))
		return err
	}); err != nil {
		return err
	}
	return v.b.st.PutSecret(ctx, v.owner, kind, key, blob)
}

// Delete removes one value.
func (v *View) Delete(ctx context.Context, kind, key string) error {
	if err := v.withKey(func([]byte) error { return nil }); err != nil {
		return err
	}
	return v.b.st.DeleteSecret(ctx, v.owner, kind, key)
}

// List lists the keys of one kind.
func (v *View) List(ctx context.Context, kind string) ([]string, error) {
	if err := v.withKey(func([]byte) error { return nil }); err != nil {
		return nil, err
	}
	return v.b.st.SecretKeys(ctx, v.owner, kind)
}
