package identity

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcias/internal/policy"
)

// holder is a Config.HashHook that, once armed, holds the first Argon2
// slot it runs in until released.
type holder struct {
	armed            atomic.Bool
	entered, release chan struct{}
	once, done       sync.Once
}

func newHolder(t *testing.T) *holder {
	h := &holder{entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(h.free)
	return h
}

func (h *holder) hook() {
	if !h.armed.CompareAndSwap(true, false) {
		return
	}
	h.once.Do(func() { close(h.entered) })
	<-h.release
}

func (h *holder) free() { h.done.Do(func() { close(h.release) }) }

func (h *holder) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing reached the hash")
	}
}

// TestOnlyAVerifiedLoginClearsTheAccountCount: a refused attempt — by the
// address limit, by login policy (right password), by a busy server, or
// a password re-check for a signed-in caller — never clears the
// account's failures; a complete login does.
func TestOnlyAVerifiedLoginClearsTheAccountCount(t *testing.T) {
	hold := newHolder(t)
	svc, _, admin := newService(t, Config{AccountFailures: 3, IPFailures: 2, Argon2Slots: 1, Argon2MaxWait: 20 * time.Millisecond, HashHook: hold.hook})
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "vic", AccountType: "human", Password: "vic-password-123"}); err != nil {
		t.Fatal(err)
	}
	vic, err := svc.Login(ctx, LoginRequest{Username: "vic", Password: "vic-password-123", RemoteIP: "10.9.9.9:1"})
	if err != nil {
		t.Fatal(err)
	}
	vicID, err := svc.ValidateToken(ctx, vic.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreatePolicy(ctx, admin, policy.Rule{Priority: 1, Effect: policy.Deny, ServiceNames: []string{"blocked"}, Description: "test"}); err != nil {
		t.Fatal(err)
	}
	login := func(pw, ip, service string) error {
		_, err := svc.Login(ctx, LoginRequest{Username: "vic", Password: pw, RemoteIP: ip + ":1", ServiceName: service})
		return err
	}
	mustBe := func(step string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v; want %v", step, err, want)
		}
	}
	mustBe("guess 1", login("guess-one-password", "10.0.0.1", ""), ErrBadCredentials)
	mustBe("guess 2", login("guess-two-password", "10.0.0.1", ""), ErrBadCredentials)
	// 10.0.0.1 is at its limit: refused, and the account's count stays.
	for range 5 {
		mustBe("over the address limit", login("guess-x-password", "10.0.0.1", ""), ErrThrottled)
	}
	// The right password where policy says no: no failure, no clearing.
	mustBe("policy", login("vic-password-123", "10.0.0.2", "blocked"), ErrPolicyDenied)
	// A signed-in re-check of the password (ChangePassword) passing does
	// not clear it either: it proves one factor, not a login.
	hold.armed.Store(false)
	iss, err := svc.ChangePassword(ctx, vicID, vicID.Subject, "vic-password-123", "vic-password-456")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ValidateToken(ctx, iss.Token); err != nil {
		t.Fatal(err)
	}
	// A server too busy to hash: withdrawn, not counted.
	hold.armed.Store(true)
	held := make(chan struct{})
	go func() {
		defer close(held)
		_, _ = svc.Login(ctx, LoginRequest{Username: "nobody", Password: "x", RemoteIP: "10.0.0.9:1"})
	}()
	hold.waitEntered(t)
	for range 5 {
		mustBe("busy", login("guess-y-password", "10.0.0.3", ""), ErrBusy)
	}
	hold.free()
	<-held
	// Two failures so far: one more reaches the limit of three.
	mustBe("guess 3", login("guess-three-password", "10.0.0.4", ""), ErrBadCredentials)
	mustBe("after the limit", login("vic-password-456", "10.0.0.5", ""), ErrThrottled)
}

// TestLoginRacingPasswordChangeMintsNothing: a login that verified the old
// password while an admin reset it must not get a token once the reset
// has revoked the account's others.
func TestLoginRacingPasswordChangeMintsNothing(t *testing.T) {
	hold := newHolder(t)
	svc, _, admin := newService(t, Config{Argon2Slots: 2, HashHook: hold.hook})
	ctx := context.Background()
	a, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "vic", AccountType: "human", Password: "old-password-123"})
	if err != nil {
		t.Fatal(err)
	}
	hold.armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := svc.Login(ctx, LoginRequest{Username: "vic", Password: "old-password-123", RemoteIP: "10.0.0.1:1"})
		done <- err
	}()
	hold.waitEntered(t) // the login read the account and holds its hash
	pw := "new-password-123"
	if _, err := svc.UpdateAccount(ctx, admin, a.ID, UpdateAccountRequest{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	hold.free()
	if err := <-done; !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login with the password that was just replaced: %v; want ErrBadCredentials", err)
	}
	toks, err := svc.ListTokens(ctx, admin, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		if tok.RevokedAt == nil {
			t.Fatalf("a live token %s was minted from the old password", tok.JTI)
		}
	}
}

// TestTokensBeforeCredentialChangeStayInvalid: a token issued before the
// account's last credential change is invalid (and cannot be renewed) even
// if its revocation were lost — the change time is checked on its own.
func TestTokensBeforeCredentialChangeStayInvalid(t *testing.T) {
	clk := &clock{t: time.Now()}
	svc, st, admin := newService(t, Config{Now: clk.now})
	ctx := context.Background()
	a, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "vic", AccountType: "human", Password: "old-password-123"})
	if err != nil {
		t.Fatal(err)
	}
	old, err := svc.Login(ctx, LoginRequest{Username: "vic", Password: "old-password-123", RemoteIP: "10.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Second)
	pw := "new-password-123"
	if _, err := svc.UpdateAccount(ctx, admin, a.ID, UpdateAccountRequest{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	// Undo the revocation, as a restore or a bug might.
	if _, err := st.DB().ExecContext(ctx, `UPDATE tokens SET revoked_at = NULL WHERE account_id = ?`, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ValidateToken(ctx, old.Token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("validate a token from before the change: %v", err)
	}
	if _, err := svc.Renew(ctx, old.Token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("renew a token from before the change: %v", err)
	}
	// A token from the same second as the change, after it, is fine.
	fresh, err := svc.Login(ctx, LoginRequest{Username: "vic", Password: pw, RemoteIP: "10.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ValidateToken(ctx, fresh.Token); err != nil {
		t.Fatalf("token issued right after the change: %v", err)
	}
}

// TestCredentialChangeVoidsSSOCodes: a code issued from a session before
// the password changed cannot be exchanged afterwards.
func TestCredentialChangeVoidsSSOCodes(t *testing.T) {
	svc, _, admin := newService(t, Config{})
	ctx := context.Background()
	alice := ssoUser(t, svc, admin, "alice")
	code, err := svc.IssueSSOCode(ctx, alice, ssoWiki)
	if err != nil {
		t.Fatal(err)
	}
	pw := "alice-reset-password"
	if _, err := svc.UpdateAccount(ctx, admin, alice.Subject, UpdateAccountRequest{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ExchangeSSOCode(ctx, ssoWiki, code, ssoWiki.RedirectURI); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("exchange after the reset: %v; want ErrInvalidGrant", err)
	}
}

// TestEveryArgon2UseIsGated: with the one slot held, every operation that
// hashes — logins of known and unknown users, password change and reset,
// account creation, the offline recovery — answers ErrBusy instead of
// hashing beside it.
func TestEveryArgon2UseIsGated(t *testing.T) {
	hold := newHolder(t)
	svc, _, admin := newService(t, Config{Argon2Slots: 1, Argon2MaxWait: 10 * time.Millisecond, HashHook: hold.hook})
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "vic", AccountType: "human", Password: "vic-password-123"}); err != nil {
		t.Fatal(err)
	}
	hold.armed.Store(true)
	held := make(chan struct{})
	go func() {
		defer close(held)
		_, _ = svc.Login(ctx, LoginRequest{Username: "nobody", Password: "x", RemoteIP: "10.0.0.9:1"})
	}()
	defer func() { hold.free(); <-held }()
	hold.waitEntered(t)
	pw := "another-password-1"
	for name, op := range map[string]func() error{
		"login": func() error {
			_, err := svc.Login(ctx, LoginRequest{Username: "vic", Password: "vic-password-123"})
			return err
		},
		"unknown user": func() error { _, err := svc.Login(ctx, LoginRequest{Username: "ghost", Password: "x"}); return err },
		"change":       func() error { _, err := svc.ChangePassword(ctx, admin, admin.Subject, adminPW, pw); return err },
		"reset": func() error {
			_, err := svc.UpdateAccount(ctx, admin, admin.Subject, UpdateAccountRequest{Password: &pw})
			return err
		},
		"create": func() error {
			_, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "new", AccountType: "human", Password: pw})
			return err
		},
		"recover-admin":  func() error { _, err := svc.RecoverAdmin(ctx, "admin", pw); return err },
		"create (admin)": func() error { _, err := svc.RecoverAdmin(ctx, "second-admin", pw); return err },
	} {
		if err := op(); !errors.Is(err, ErrBusy) {
			t.Errorf("%s with every slot taken: %v; want ErrBusy", name, err)
		}
	}
}
