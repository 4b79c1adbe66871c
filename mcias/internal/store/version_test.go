package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDataVersionSeesEveryCommit: DataVersion changes after a commit
// through this store's pool and after one by another handle on the file
// (another process, such as mcias recover-admin), and stays put when
// nothing is committed, reads included.
func TestDataVersionSeesEveryCommit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mcias.db")
	st, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	version := func() int64 {
		t.Helper()
		v, err := st.DataVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	now := time.Now().UTC()
	a := &Account{ID: "acct-1", Username: "alice", Type: "human", Status: StatusActive, Roles: []string{"user"}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordToken(ctx, TokenRecord{JTI: "jti-1", AccountID: a.ID, Kind: KindLogin, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}

	v0 := version()
	if _, err := st.TokenState(ctx, "jti-1"); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != v0 {
		t.Fatalf("a read moved the version: %d -> %d", v0, v)
	}
	if ok, err := st.RevokeToken(ctx, "jti-1"); err != nil || !ok {
		t.Fatalf("revoke: %v %v", ok, err)
	}
	v1 := version()
	if v1 == v0 {
		t.Fatal("a commit through the store's own pool left the version unchanged")
	}

	other, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.UpdateAccount(ctx, a.ID, func(a *Account) error { a.Status = StatusDisabled; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if v := version(); v == v1 {
		t.Fatal("a commit by another handle on the file left the version unchanged")
	}
}

// TestDataVersionParallelAndClose: parallel callers are all answered;
// after Close the store answers an error instead of hanging.
func TestDataVersionParallelAndClose(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "mcias.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			if _, err := st.DataVersion(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DataVersion(ctx); !errors.Is(err, errStoreClosed) {
		t.Fatalf("DataVersion after Close: %v; want errStoreClosed", err)
	}
	// A store closed before its first DataVersion closes and refuses too.
	unused, err := Open(ctx, filepath.Join(t.TempDir(), "mcias.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := unused.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unused.DataVersion(ctx); !errors.Is(err, errStoreClosed) {
		t.Fatalf("DataVersion after Close: %v; want errStoreClosed", err)
	}
}

// TestTokenState: one read returns the token's record with its account's
// current state — roles sorted, revocation, status — and no secret.
func TestTokenState(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "mcias.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC()
	a := &Account{ID: "acct-1", Username: "alice", Type: "human", Status: StatusActive, PasswordHash: "$argon2id$secret",
		TOTPSecret: "TOTPSECRET", Roles: []string{"user", "admin"}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	bare := &Account{ID: "acct-2", Username: "svc", Type: "system", Status: StatusActive, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAccount(ctx, bare); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []TokenRecord{
		{JTI: "jti-a", AccountID: a.ID, Kind: KindRenew, IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
		{JTI: "jti-s", AccountID: bare.ID, Kind: KindSystem, IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
	} {
		if err := st.RecordToken(ctx, rec, nil); err != nil {
			t.Fatal(err)
		}
	}

	ts, err := st.TokenState(ctx, "jti-a")
	if err != nil {
		t.Fatal(err)
	}
	got := ts.Account
	if ts.Kind != KindRenew || ts.Revoked || got.ID != a.ID || got.Username != "alice" || got.Type != "human" ||
		got.Status != StatusActive || strings.Join(got.Roles, ",") != "admin,user" || got.CredentialsChangedAt != nil {
		t.Fatalf("token state = %+v", ts)
	}
	if got.PasswordHash != "" || got.TOTPSecret != "" {
		t.Fatal("token state carries the account's secrets")
	}
	if ts, err := st.TokenState(ctx, "jti-s"); err != nil || ts.Account.Roles == nil || len(ts.Account.Roles) != 0 || ts.Kind != KindSystem {
		t.Fatalf("roleless account: %+v %v; want an empty, non-nil role list", ts, err)
	}

	if _, err := st.UpdateAccount(ctx, a.ID, func(a *Account) error {
		changed := now.Add(time.Minute)
		a.CredentialsChangedAt, a.Roles = &changed, []string{"guest"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ts, err = st.TokenState(ctx, "jti-a")
	if err != nil {
		t.Fatal(err)
	}
	if !ts.Revoked || ts.Account.CredentialsChangedAt == nil || strings.Join(ts.Account.Roles, ",") != "guest" {
		t.Fatalf("after a credential change: %+v; want revoked, the change time and the new roles", ts)
	}
	if _, err := st.TokenState(ctx, "no-such-jti"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown jti: %v; want ErrNotFound", err)
	}
	if err := st.DeleteAccount(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TokenState(ctx, "jti-a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted account's token: %v; want ErrNotFound", err)
	}
}
