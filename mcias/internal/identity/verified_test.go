package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/token"
)

// mustValidate validates tok and fails the test unless it is valid.
func mustValidate(t *testing.T, svc *Service, tok string) *auth.Identity {
	t.Helper()
	id, err := svc.ValidateToken(context.Background(), tok)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	return id
}

// mustRefuse fails the test unless tok is refused as invalid.
func mustRefuse(t *testing.T, svc *Service, tok, why string) {
	t.Helper()
	if _, err := svc.ValidateToken(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("%s: validate = %v; want ErrInvalidToken", why, err)
	}
}

// TestCachedValidationIsAsFreshAsTheDatabase: a token validated (and so
// cached) before is refused at the very next validation after each change
// that ends it — revocation, logout, renewal, disable, password change by
// the account or an admin, deletion, a change by another process on the
// same database file — and a role change shows at once.
func TestCachedValidationIsAsFreshAsTheDatabase(t *testing.T) {
	svc, st, admin := newService(t, Config{})
	ctx := context.Background()
	acct, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "carol", AccountType: "human", Password: "carol-password-1", Roles: []string{"user"}})
	if err != nil {
		t.Fatal(err)
	}
	login := func() string {
		t.Helper()
		iss, err := svc.Login(ctx, LoginRequest{Username: "carol", Password: "carol-password-1", RemoteIP: "10.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		// Validated twice: the second answer comes from the cache.
		mustValidate(t, svc, iss.Token)
		mustValidate(t, svc, iss.Token)
		return iss.Token
	}

	tok := login()
	var c struct {
		JTI string `json:"jti"`
	}
	if err := decodeJWTPart(strings.Split(tok, ".")[1], &c); err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeToken(ctx, admin, c.JTI); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, tok, "revoked")

	tok = login()
	if _, err := svc.UpdateAccount(ctx, admin, acct.ID, UpdateAccountRequest{Roles: &[]string{"admin", "user"}}); err != nil {
		t.Fatal(err)
	}
	if id := mustValidate(t, svc, tok); !id.IsAdmin() {
		t.Fatalf("roles after the change: %v; want admin among them", id.Roles)
	}
	if _, err := svc.UpdateAccount(ctx, admin, acct.ID, UpdateAccountRequest{Roles: &[]string{"user"}}); err != nil {
		t.Fatal(err)
	}
	if id := mustValidate(t, svc, tok); id.IsAdmin() {
		t.Fatalf("roles after the removal: %v; want no admin", id.Roles)
	}

	if err := svc.Logout(ctx, tok); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, tok, "logged out")

	tok = login()
	renewed, err := svc.Renew(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, tok, "renewed")
	mustValidate(t, svc, renewed.Token)

	disabled, active := "disabled", "active"
	if _, err := svc.UpdateAccount(ctx, admin, acct.ID, UpdateAccountRequest{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, renewed.Token, "account disabled")
	if _, err := svc.UpdateAccount(ctx, admin, acct.ID, UpdateAccountRequest{Status: &active}); err != nil {
		t.Fatal(err)
	}

	tok = login()
	carol := mustValidate(t, svc, tok)
	if _, err := svc.ChangePassword(ctx, carol, acct.ID, "carol-password-1", "carol-password-2"); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, tok, "own password changed")
	reset := "carol-password-1"
	if _, err := svc.UpdateAccount(ctx, admin, acct.ID, UpdateAccountRequest{Password: &reset}); err != nil {
		t.Fatal(err)
	}

	// Another process (mcias recover-admin, a restore script) writing the
	// same file: its commit is seen at the next validation too.
	tok = login()
	other, err := store.Open(ctx, st.DB().Path(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.UpdateAccount(ctx, acct.ID, func(a *store.Account) error { a.Status = store.StatusDisabled; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, tok, "disabled by another process")
	if _, err := svc.UpdateAccount(ctx, admin, acct.ID, UpdateAccountRequest{Status: &active}); err != nil {
		t.Fatal(err)
	}

	tok = login()
	if err := svc.DeleteAccount(ctx, admin, acct.ID); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, tok, "account deleted")
}

// TestCachedValidationExpiresAndSurvivesKeyRotation: a cached token is
// refused once it expires, and a key rotation keeps tokens of the old key
// valid (they are checked again, not dropped).
func TestCachedValidationExpiresAndSurvivesKeyRotation(t *testing.T) {
	clk := &clock{t: time.Now()}
	svc, _, admin := newService(t, Config{Now: clk.now, HumanTTL: time.Hour})
	ctx := context.Background()
	iss, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW, RemoteIP: "10.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	mustValidate(t, svc, iss.Token)
	if _, err := svc.RotateKey(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if n := svc.verified.len(); n != 0 {
		t.Fatalf("%d cache entries after a key rotation; want 0", n)
	}
	mustValidate(t, svc, iss.Token)
	mustValidate(t, svc, iss.Token)
	clk.add(time.Hour)
	mustRefuse(t, svc, iss.Token, "expired while cached")
}

// TestForgedTokensAreNotCached: a flood of well-formed tokens with bad
// signatures, foreign issuers or unknown keys is refused and leaves the
// cache as it was; a token differing in one byte from a cached one is not
// taken for it.
func TestForgedTokensAreNotCached(t *testing.T) {
	svc, _, _ := newService(t, Config{})
	ctx := context.Background()
	iss, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW, RemoteIP: "10.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	mustValidate(t, svc, iss.Token)
	before := svc.verified.len()

	signed := iss.Token[:strings.LastIndexByte(iss.Token, '.')+1]
	sig := make([]byte, 64)
	for range 500 {
		if _, err := rand.Read(sig); err != nil {
			t.Fatal(err)
		}
		mustRefuse(t, svc, signed+base64.RawURLEncoding.EncodeToString(sig), "random signature")
	}
	// One character in the middle of the signature (the last one carries
	// only part of a byte).
	b := []byte(iss.Token)
	i := len(signed) + 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	mustRefuse(t, svc, string(b), "one changed signature character")

	svc.mu.RLock()
	key := svc.active
	svc.mu.RUnlock()
	now := time.Now().Truncate(time.Second)
	claims := token.Claims{Subject: "someone", IssuedAt: now, ExpiresAt: now.Add(time.Hour), ID: "0123456789abcdef0123456789abcdef",
		Username: "admin", AccountType: token.AccountHuman}
	claims.Issuer = "another-issuer"
	foreign, err := token.Sign(key, claims)
	if err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, foreign, "foreign issuer, our key")
	stray, err := token.NewKey(now)
	if err != nil {
		t.Fatal(err)
	}
	claims.Issuer = svc.cfg.Issuer
	unknown, err := token.Sign(stray, claims)
	if err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, svc, unknown, "unknown signing key")
	mustRefuse(t, svc, strings.Repeat("a", token.MaxLength+1), "oversized")

	if n := svc.verified.len(); n != before {
		t.Fatalf("cache entries %d -> %d after forged tokens; want unchanged", before, n)
	}
	mustValidate(t, svc, iss.Token)
}

// TestVerifiedCacheBounded: the cache never holds more than maxVerified
// entries, and a put racing a key change is dropped.
func TestVerifiedCacheBounded(t *testing.T) {
	v := newVerifiedTokens()
	now := time.Now()
	live := token.Claims{ExpiresAt: now.Add(time.Hour)}
	for i := range maxVerified + 100 {
		var k [32]byte
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		_, gen, _ := v.get(k, now)
		v.put(k, verifiedEntry{claims: live}, gen, now)
		if v.len() > maxVerified {
			t.Fatalf("%d entries after %d puts; bound %d", v.len(), i+1, maxVerified)
		}
	}
	_, gen, _ := v.get([32]byte{1}, now)
	v.keysChanged()
	v.put([32]byte{1}, verifiedEntry{claims: live}, gen, now)
	if v.len() != 0 {
		t.Fatalf("%d entries: a put from before a key change was kept", v.len())
	}
}

// decodeJWTPart decodes a base64url JSON segment of a token.
func decodeJWTPart(seg string, out any) error {
	data, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// TestUnrecordedTokenCachedUntilACommit: a token that verifies but whose
// jti is not recorded is refused, remembered as such (no database read
// for a repeat), and accepted once a commit records it — the negative
// answer is held to the data version like any other.
func TestUnrecordedTokenCachedUntilACommit(t *testing.T) {
	svc, st, admin := newService(t, Config{})
	ctx := context.Background()
	svc.mu.RLock()
	key := svc.active
	svc.mu.RUnlock()
	now := time.Now().UTC().Truncate(time.Second)
	jti, err := token.NewID()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.Sign(key, token.Claims{Issuer: svc.cfg.Issuer, Subject: admin.Subject, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		ID: jti, Username: admin.Username, AccountType: token.AccountHuman, Roles: admin.Roles})
	if err != nil {
		t.Fatal(err)
	}
	before := svc.verified.len()
	mustRefuse(t, svc, tok, "unrecorded jti")
	mustRefuse(t, svc, tok, "unrecorded jti, again")
	if n := svc.verified.len(); n != before+1 {
		t.Fatalf("cache entries %d -> %d; want the refusal remembered once", before, n)
	}
	if err := st.RecordToken(ctx, store.TokenRecord{JTI: jti, AccountID: admin.Subject, Kind: store.KindLogin, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	mustValidate(t, svc, tok)
}
