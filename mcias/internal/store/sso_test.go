package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func openWithAccount(t *testing.T) (*Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "mcias.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC()
	a := &Account{ID: "acct-1", Username: "alice", Type: "human", Status: StatusActive, Roles: []string{"user"}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	return st, a.ID
}

func TestSSOCodeRedeem(t *testing.T) {
	st, acct := openWithAccount(t)
	ctx := context.Background()
	// A whole-second expiry and a "now" a fraction past it: with
	// RFC3339Nano strings ("...:05Z" vs "...:05.1Z") the text comparison
	// would call the code unexpired.
	issued := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	code := SSOCode{Hash: "h1", ClientID: "wiki", RedirectURI: "https://w.example/cb", AccountID: acct, CreatedAt: issued, ExpiresAt: issued.Add(time.Minute)}
	if err := st.CreateSSOCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSSOCode(ctx, code); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate code: %v; want ErrConflict", err)
	}
	redeem := SSORedemption{Hash: "h1", ClientID: "wiki", RedirectURI: "https://w.example/cb", Now: issued.Add(time.Second)}
	record := func(jti string) func(string) (TokenRecord, error) {
		return func(accountID string) (TokenRecord, error) {
			if accountID != acct {
				t.Errorf("mint for account %q; want %q", accountID, acct)
			}
			return TokenRecord{JTI: jti, AccountID: accountID, Kind: KindSSO, IssuedAt: issued, ExpiresAt: issued.Add(time.Hour)}, nil
		}
	}

	// A failing mint leaves the code unused.
	boom := errors.New("boom")
	if err := st.RedeemSSOCode(ctx, redeem, func(string) (TokenRecord, error) { return TokenRecord{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("redeem with failing mint: %v", err)
	}
	if err := st.RedeemSSOCode(ctx, redeem, record("jti-1")); err != nil {
		t.Fatalf("redeem: %v", err)
	}
	rec, err := st.GetToken(ctx, "jti-1")
	if err != nil || rec.Kind != KindSSO || rec.RevokedAt != nil {
		t.Fatalf("recorded token %+v, %v", rec, err)
	}
	if err := st.RedeemSSOCode(ctx, redeem, record("jti-2")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second redeem: %v; want ErrNotFound", err)
	}
	if _, err := st.GetToken(ctx, "jti-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused redemption recorded a token: %v", err)
	}
	if ok, err := st.RevokeSSOCodeToken(ctx, "h1", issued); err != nil || !ok {
		t.Fatalf("revoke the redeemed code's token = %v, %v; want true", ok, err)
	}
	if rec, err := st.GetToken(ctx, "jti-1"); err != nil || rec.RevokedAt == nil {
		t.Fatalf("token after revoke %+v, %v", rec, err)
	}
	if ok, err := st.RevokeSSOCodeToken(ctx, "h1", issued); err != nil || ok {
		t.Fatalf("second revoke = %v, %v; want false", ok, err)
	}

	// An unused code revokes nothing; expiry is exact to the nanosecond.
	code2 := SSOCode{Hash: "h2", ClientID: "wiki", RedirectURI: "https://w.example/cb", AccountID: acct, CreatedAt: issued, ExpiresAt: issued.Add(time.Minute)}
	if err := st.CreateSSOCode(ctx, code2); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.RevokeSSOCodeToken(ctx, "h2", issued); err != nil || ok {
		t.Fatalf("revoke for an unused code = %v, %v; want false", ok, err)
	}
	late := SSORedemption{Hash: "h2", ClientID: "wiki", RedirectURI: "https://w.example/cb", Now: code2.ExpiresAt.Add(100 * time.Millisecond)}
	if err := st.RedeemSSOCode(ctx, late, record("jti-3")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("redeem 100ms after expiry: %v; want ErrNotFound", err)
	}
	late.Now = code2.ExpiresAt.Add(-time.Nanosecond)
	if err := st.RedeemSSOCode(ctx, late, record("jti-3")); err != nil {
		t.Fatalf("redeem 1ns before expiry: %v", err)
	}

	n, err := st.PruneSSOCodes(ctx, issued.Add(time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("prune = %d, %v; want 2", n, err)
	}
}
