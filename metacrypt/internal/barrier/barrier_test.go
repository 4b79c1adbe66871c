package barrier

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/seal"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

var fastParams = seal.Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}

const password = "correct horse battery staple"

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func open(t *testing.T, path string, c *clock) (*store.Store, *Barrier) {
	t.Helper()
	st, err := store.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, New(st, Options{Params: fastParams, Now: c.now})
}

func newBarrier(t *testing.T) (*store.Store, *Barrier, string, *clock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "metacrypt.db")
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	st, b := open(t, path, c)
	if err := b.Init(t.Context(), []byte(password)); err != nil {
		t.Fatal(err)
	}
	return st, b, path, c
}

func TestInitUnsealSealRestart(t *testing.T) {
	ctx := t.Context()
	st, b, path, c := newBarrier(t)
	if b.Sealed() {
		t.Fatal("sealed after init")
	}
	if err := b.Init(ctx, []byte(password)); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("second init: %v", err)
	}
	sys := b.View(SysOwner)
	if err := sys.Put(ctx, "policy", "rules", []byte("secret rules")); err != nil {
		t.Fatal(err)
	}
	// The stored bytes are not the plaintext.
	raw, err := st.Secret(ctx, SysOwner, "policy", "rules")
	if err != nil || bytes.Contains(raw, []byte("secret rules")) {
		t.Fatalf("stored in the clear: %q %v", raw, err)
	}

	mek := b.mek
	dek := b.keys[SysOwner]
	b.Seal()
	if !b.Sealed() || !allZero(mek) || !allZero(dek) {
		t.Fatal("seal did not zeroize the key material")
	}
	if _, err := sys.Get(ctx, "policy", "rules"); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("get while sealed: %v", err)
	}
	if err := sys.Put(ctx, "policy", "x", nil); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("put while sealed: %v", err)
	}

	// A restart (a new barrier on the same database) comes up sealed.
	_ = st.Close()
	_, b2 := open(t, path, c)
	status, err := b2.Status(ctx)
	if err != nil || !status.Initialized || !status.Sealed || status.KeyVersion != 1 {
		t.Fatalf("after restart: %+v %v", status, err)
	}
	if err := b2.Unseal(ctx, []byte(password)); err != nil {
		t.Fatal(err)
	}
	got, err := b2.View(SysOwner).Get(ctx, "policy", "rules")
	if err != nil || string(got) != "secret rules" {
		t.Fatalf("after unseal: %q %v", got, err)
	}
}

func TestInitRefusesShortPassword(t *testing.T) {
	c := &clock{t: time.Now()}
	_, b := open(t, filepath.Join(t.TempDir(), "m.db"), c)
	err := b.Init(t.Context(), []byte("short"))
	if apierr.KindOf(err) != apierr.Invalid || apierr.Describe(err).Field != "password" {
		t.Fatalf("short password: %v", err)
	}
	if s, _ := b.Status(t.Context()); s.Initialized {
		t.Fatal("initialized by a refused init")
	}
	if err := b.Unseal(t.Context(), []byte(password)); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("unseal before init: %v", err)
	}
}

func TestWrongPasswordThrottled(t *testing.T) {
	ctx := t.Context()
	st, b, path, c := newBarrier(t)
	b.Seal()
	for i := range seal.DefaultThrottle.FreeAttempts {
		if err := b.Unseal(ctx, []byte("wrong password!")); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Now even the right password is refused until the wait is over, and
	// the refusal says how long to wait.
	err := b.Unseal(ctx, []byte(password))
	d := apierr.Describe(err)
	if d.Kind != apierr.Throttled || d.RetryAfter != time.Second {
		t.Fatalf("throttled attempt: %+v", d)
	}
	// The count survives a restart.
	_ = st.Close()
	st2, b2 := open(t, path, c)
	if s, _ := b2.Status(ctx); s.RetryAfter != time.Second {
		t.Fatalf("after restart: %+v", s)
	}
	c.t = c.t.Add(time.Second)
	if err := b2.Unseal(ctx, []byte("wrong again....")); !errors.Is(err, ErrWrongPassword) {
		t.Fatal(err)
	}
	if err := b2.Unseal(ctx, []byte(password)); apierr.Describe(err).RetryAfter != 2*time.Second {
		t.Fatalf("second wait: %v", err)
	}
	c.t = c.t.Add(2 * time.Second)
	if err := b2.Unseal(ctx, []byte(password)); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := st2.Failures(ctx); n != 0 {
		t.Fatalf("failures not reset: %d", n)
	}
}

// TestRowSwapDetected copies one row's ciphertext into another row (as an
// attacker with write access to the database file would) and checks it no
// longer decrypts, in both directions, while each row still decrypts in
// place.
func TestRowSwapDetected(t *testing.T) {
	ctx := t.Context()
	st, b, _, _ := newBarrier(t)
	m := store.MountRow{ID: "m1", Name: "pki", Type: "ca", CreatedAt: time.Now()}
	if err := b.AddMount(ctx, m); err != nil {
		t.Fatal(err)
	}
	v := b.View("m1")
	if err := v.Put(ctx, "issuer", "infra", []byte("infra key")); err != nil {
		t.Fatal(err)
	}
	if err := v.Put(ctx, "issuer", "services", []byte("services key")); err != nil {
		t.Fatal(err)
	}
	if err := b.View(SysOwner).Put(ctx, "issuer", "infra", []byte("sys value")); err != nil {
		t.Fatal(err)
	}
	swap := func(a, b [3]string) {
		t.Helper()
		read := func(r [3]string) []byte {
			var v []byte
			if err := st.DB().QueryRowContext(ctx, `SELECT value FROM secrets WHERE owner = ? AND kind = ? AND key = ?`, r[0], r[1], r[2]).Scan(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		write := func(r [3]string, v []byte) {
			if _, err := st.DB().ExecContext(ctx, `UPDATE secrets SET value = ? WHERE owner = ? AND kind = ? AND key = ?`, v, r[0], r[1], r[2]); err != nil {
				t.Fatal(err)
			}
		}
		va, vb := read(a), read(b)
		write(a, vb)
		write(b, va)
	}
	infra, services := [3]string{"m1", "issuer", "infra"}, [3]string{"m1", "issuer", "services"}
	swap(infra, services)
	for _, k := range []string{"infra", "services"} {
		if _, err := v.Get(ctx, "issuer", k); !errors.Is(err, ErrTampered) {
			t.Fatalf("swapped row %s decrypted: %v", k, err)
		}
	}
	swap(infra, services)
	if got, err := v.Get(ctx, "issuer", "infra"); err != nil || string(got) != "infra key" {
		t.Fatalf("restored row: %q %v", got, err)
	}
	// Across owners: same kind and key, different mount (and DEK).
	sysRow := [3]string{SysOwner, "issuer", "infra"}
	swap(infra, sysRow)
	if _, err := v.Get(ctx, "issuer", "infra"); !errors.Is(err, ErrTampered) {
		t.Fatalf("row from another owner decrypted: %v", err)
	}
	// A wrapped data key moved to another owner is caught at unseal.
	swap(infra, sysRow)
	if _, err := st.DB().ExecContext(ctx, `UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE owner = 'sys') WHERE owner = 'm1'`); err != nil {
		t.Fatal(err)
	}
	b.Seal()
	if err := b.Unseal(ctx, []byte(password)); !errors.Is(err, ErrTampered) || !b.Sealed() {
		t.Fatalf("unseal with a moved data key: %v (sealed %v)", err, b.Sealed())
	}
}

func TestChangePasswordAndRotate(t *testing.T) {
	ctx := t.Context()
	st, b, _, c := newBarrier(t)
	if err := b.AddMount(ctx, store.MountRow{ID: "m1", Name: "pki", Type: "ca", CreatedAt: c.t}); err != nil {
		t.Fatal(err)
	}
	if err := b.View("m1").Put(ctx, "k", "v", []byte("value")); err != nil {
		t.Fatal(err)
	}
	before, _, _ := st.DataKeys(ctx)

	const next = "a brand new unseal password"
	if err := b.ChangePassword(ctx, []byte("not the password"), []byte(next)); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("change with a wrong password: %v", err)
	}
	if err := b.ChangePassword(ctx, []byte(password), []byte("short")); apierr.Describe(err).Field != "new_password" {
		t.Fatalf("short new password: %v", err)
	}
	if err := b.ChangePassword(ctx, []byte(password), []byte(next)); err != nil {
		t.Fatal(err)
	}
	after, _, _ := st.DataKeys(ctx)
	for owner := range before {
		if !bytes.Equal(before[owner], after[owner]) {
			t.Fatalf("password change re-wrapped the data key of %s", owner)
		}
	}
	b.Seal()
	if err := b.Unseal(ctx, []byte(password)); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password still works: %v", err)
	}
	if err := b.Unseal(ctx, []byte(next)); err != nil {
		t.Fatal(err)
	}

	if _, err := b.Rotate(ctx, []byte(password)); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("rotate with the old password: %v", err)
	}
	v, err := b.Rotate(ctx, []byte(next))
	if err != nil || v != 2 {
		t.Fatalf("rotate: %d %v", v, err)
	}
	rotated, versions, _ := st.DataKeys(ctx)
	for owner := range before {
		if bytes.Equal(before[owner], rotated[owner]) || versions[owner] != 2 {
			t.Fatalf("data key of %s not re-wrapped", owner)
		}
	}
	if got, err := b.View("m1").Get(ctx, "k", "v"); err != nil || string(got) != "value" {
		t.Fatalf("after rotate: %q %v", got, err)
	}
	b.Seal()
	if _, err := b.Rotate(ctx, []byte(next)); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("rotate while sealed: %v", err)
	}
	if err := b.Unseal(ctx, []byte(next)); err != nil {
		t.Fatal(err)
	}
	if got, err := b.View("m1").Get(ctx, "k", "v"); err != nil || string(got) != "value" {
		t.Fatalf("after rotate and unseal: %q %v", got, err)
	}
	if s, _ := b.Status(ctx); s.KeyVersion != 2 {
		t.Fatalf("status: %+v", s)
	}

	if err := b.RemoveMount(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.View("m1").Get(ctx, "k", "v"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("removed mount: %v", err)
	}
}

func TestConcurrentUseAndSeal(t *testing.T) {
	ctx := context.Background()
	_, b, _, _ := newBarrier(t)
	v := b.View(SysOwner)
	if err := v.Put(ctx, "k", "v", []byte("x")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			if _, err := v.Get(ctx, "k", "v"); err != nil && !errors.Is(err, engine.ErrSealed) {
				t.Errorf("get: %v", err)
				return
			}
		}
	}()
	b.Seal()
	<-done
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return len(b) > 0
}
