package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/identity/passkeytest"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

const testOrigin = "https://localhost:8443"

// passkeyEnv is a service with passkeys for the relying party "localhost"
// at testOrigin, and a user alice.
type passkeyEnv struct {
	svc   *Service
	st    *store.Store
	pk    *Passkeys
	clock *clock
	admin *auth.Identity
	alice *auth.Identity
}

func newPasskeyEnv(t *testing.T, cfg Config) *passkeyEnv {
	t.Helper()
	c := &clock{t: time.Now().UTC()}
	cfg.Now = c.now
	svc, st, admin := newService(t, cfg)
	pk, err := NewPasskeys(svc, PasskeyConfig{RPID: "localhost", RPOrigins: []string{testOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	return &passkeyEnv{svc: svc, st: st, pk: pk, clock: c, admin: admin, alice: passkeyHolder(t, svc, admin, "alice")}
}

// register runs a whole registration ceremony for caller with dev.
func (e *passkeyEnv) register(t *testing.T, caller *auth.Identity, dev *passkeytest.Authenticator, name string) (PasskeyInfo, error) {
	t.Helper()
	id, opts, err := e.pk.BeginRegistration(context.Background(), caller)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	resp, err := dev.Create(mustJSON(t, opts))
	if err != nil {
		t.Fatalf("authenticator create: %v", err)
	}
	return e.pk.FinishRegistration(context.Background(), caller, id, name, resp)
}

// login runs a whole usernameless login ceremony with dev.
func (e *passkeyEnv) login(t *testing.T, dev *passkeytest.Authenticator) (Issued, error) {
	t.Helper()
	id, opts, err := e.pk.BeginLogin(context.Background(), "192.0.2.1:1234")
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	resp, err := dev.Get(mustJSON(t, opts))
	if err != nil {
		t.Fatalf("authenticator get: %v", err)
	}
	return e.pk.FinishLogin(context.Background(), id, resp, "192.0.2.1:1234")
}

// passkeyHolder creates a user and returns its identity as a session
// carries it.
func passkeyHolder(t *testing.T, svc *Service, admin *auth.Identity, name string) *auth.Identity {
	t.Helper()
	ctx := context.Background()
	pw := name + "-password-1"
	if _, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: name, AccountType: "human", Password: pw}); err != nil {
		t.Fatal(err)
	}
	iss, err := svc.Login(ctx, LoginRequest{Username: name, Password: pw, RemoteIP: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.ValidateToken(ctx, iss.Token)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPasskeyRegisterAndLogin(t *testing.T) {
	e := newPasskeyEnv(t, Config{})
	ctx := context.Background()
	dev := passkeytest.New(testOrigin)
	dev.BackupEligible = true

	info, err := e.register(t, e.alice, dev, "laptop")
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if info.Name != "laptop" || !info.BackupEligible || info.BackupState || info.LastUsedAt != nil {
		t.Fatalf("registered passkey = %+v", info)
	}

	// The user handle the device stored is random, at most 64 bytes, is
	// not the username, and is the one recorded for the account.
	handle := dev.Credentials()[0].UserHandle
	if len(handle) == 0 || len(handle) > 64 {
		t.Fatalf("user handle is %d bytes", len(handle))
	}
	if bytes.Contains(handle, []byte("alice")) || bytes.Equal(handle, []byte(e.alice.Subject)) {
		t.Fatalf("user handle %q reveals the account", handle)
	}
	stored, err := e.st.UserHandle(ctx, e.alice.Subject)
	if err != nil || !bytes.Equal(stored, handle) {
		t.Fatalf("stored handle %x, %v; device holds %x", stored, err, handle)
	}

	// A second device gets the same handle; the first is excluded.
	phone := passkeytest.New(testOrigin)
	if _, err := e.register(t, e.alice, phone, "phone"); err != nil {
		t.Fatalf("second register: %v", err)
	}
	if !bytes.Equal(phone.Credentials()[0].UserHandle, handle) {
		t.Fatal("the second passkey got a different user handle")
	}
	_, opts, err := e.pk.BeginRegistration(ctx, e.alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Create(mustJSON(t, opts)); err == nil {
		t.Fatal("the device registered twice: its credential is missing from the exclude list")
	}

	// Log in without a username; the backup state reported now is stored.
	dev.BackupState = true
	iss, err := e.login(t, dev)
	if err != nil {
		t.Fatalf("passkey login: %v", err)
	}
	who, err := e.svc.ValidateToken(ctx, iss.Token)
	if err != nil || who.Username != "alice" {
		t.Fatalf("token is for %+v (%v), want alice", who, err)
	}
	list, err := e.svc.ListPasskeys(ctx, e.alice, e.alice.Subject)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListPasskeys = %+v, %v", list, err)
	}
	for _, p := range list {
		used := p.Name == "laptop"
		if (p.LastUsedAt != nil) != used || p.BackupState != used {
			t.Fatalf("after logging in with the laptop: %+v", p)
		}
	}
	rows, err := e.st.ListPasskeys(ctx, e.alice.Subject)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if want := map[string]uint32{"laptop": 1, "phone": 0}[r.Name]; r.SignCount != want {
			t.Fatalf("%s: stored sign count %d, want %d", r.Name, r.SignCount, want)
		}
	}
}

func TestPasskeyCloneWarningFailsLogin(t *testing.T) {
	e := newPasskeyEnv(t, Config{})
	dev := passkeytest.New(testOrigin)
	if _, err := e.register(t, e.alice, dev, "key"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.login(t, dev); err != nil {
			t.Fatalf("login: %v", err)
		}
	}
	// A copy of the key whose counter lags behind: the next assertion
	// carries a counter the server has already seen.
	cred := dev.Credentials()[0]
	cred.SignCount = 1
	if _, err := e.login(t, dev); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login with a counter that went backwards = %v, want ErrBadCredentials", err)
	}
	rows, err := e.st.ListPasskeys(context.Background(), e.alice.Subject)
	if err != nil || rows[0].SignCount != 2 {
		t.Fatalf("stored counter after the refused login: %+v %v; want 2", rows, err)
	}
	// The genuine device, ahead of the stored counter, still works.
	cred.SignCount = 5
	if _, err := e.login(t, dev); err != nil {
		t.Fatalf("login with a newer counter: %v", err)
	}
}

func TestPasskeyDisabledAccountRefused(t *testing.T) {
	e := newPasskeyEnv(t, Config{})
	dev := passkeytest.New(testOrigin)
	if _, err := e.register(t, e.alice, dev, "key"); err != nil {
		t.Fatal(err)
	}
	disabled := store.StatusDisabled
	if _, err := e.svc.UpdateAccount(context.Background(), e.admin, e.alice.Subject, UpdateAccountRequest{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.login(t, dev); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login to a disabled account = %v, want ErrBadCredentials", err)
	}
}

func TestPasskeyOriginMustMatchExactly(t *testing.T) {
	e := newPasskeyEnv(t, Config{})
	for _, origin := range []string{"https://localhost:9443", "http://localhost:8443", "https://localhost", "https://LOCALHOST:8443"} {
		dev := passkeytest.New(origin)
		if _, err := e.register(t, e.alice, dev, "key"); !errors.Is(err, ErrInvalid) {
			t.Errorf("registration from %s = %v, want ErrInvalid", origin, err)
		}
	}
	dev := passkeytest.New(testOrigin)
	if _, err := e.register(t, e.alice, dev, "key"); err != nil {
		t.Fatal(err)
	}
	dev.Origin = "https://localhost:8444"
	if _, err := e.login(t, dev); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login from another port = %v, want ErrBadCredentials", err)
	}
	dev.Origin = testOrigin
	if _, err := e.login(t, dev); err != nil {
		t.Fatalf("login from the configured origin: %v", err)
	}
}

func TestPasskeyConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		rpID    string
		origins []string
		ok      bool
	}{
		{"localhost", []string{"https://localhost:8443", "http://localhost:8080"}, true},
		{"example.net", []string{"https://example.net", "https://mcias.example.net"}, true},
		{"example.net", []string{"https://example.net/"}, false},
		{"example.net", []string{"https://example.net:443"}, false},
		{"example.net", []string{"HTTPS://example.net"}, false},
		{"example.net", []string{"https://Example.net"}, false},
		{"example.net", []string{"http://example.net"}, false},
		{"example.net", []string{"https://example.net/path"}, false},
		{"example.net", []string{"https://user@example.net"}, false},
		{"example.net", []string{"https://evil.example"}, false},
		{"example.net", []string{"https://notexample.net"}, false},
		{"example.net", nil, false},
		{"127.0.0.1", []string{"https://127.0.0.1"}, false},
		{"https://example.net", []string{"https://example.net"}, false},
		{"", []string{"https://example.net"}, false},
	} {
		err := PasskeyConfig{RPID: tc.rpID, RPOrigins: tc.origins}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("rp_id %q origins %q: err = %v, want ok=%v", tc.rpID, tc.origins, err, tc.ok)
		}
	}
}

func TestPasskeyCeremoniesAreSingleUseAndExpire(t *testing.T) {
	e := newPasskeyEnv(t, Config{})
	ctx := context.Background()
	dev := passkeytest.New(testOrigin)

	id, opts, err := e.pk.BeginRegistration(ctx, e.alice)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := dev.Create(mustJSON(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	// Someone else cannot finish alice's registration, and trying uses it up.
	bob := passkeyHolder(t, e.svc, e.admin, "bob")
	if _, err := e.pk.FinishRegistration(ctx, bob, id, "stolen", resp); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bob finishing alice's ceremony = %v, want ErrInvalid", err)
	}
	if _, err := e.pk.FinishRegistration(ctx, e.alice, id, "key", resp); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reusing a ceremony = %v, want ErrInvalid", err)
	}
	if _, err := e.register(t, e.alice, dev, "key"); err != nil {
		t.Fatal(err)
	}

	id, lopts, err := e.pk.BeginLogin(ctx, "192.0.2.1:1")
	if err != nil {
		t.Fatal(err)
	}
	resp, err = dev.Get(mustJSON(t, lopts))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pk.FinishLogin(ctx, id, resp, "192.0.2.1:1"); err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := e.pk.FinishLogin(ctx, id, resp, "192.0.2.1:1"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("replaying a finished login = %v, want ErrInvalid", err)
	}

	id, lopts, err = e.pk.BeginLogin(ctx, "192.0.2.1:1")
	if err != nil {
		t.Fatal(err)
	}
	resp, err = dev.Get(mustJSON(t, lopts))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.add(DefaultCeremonyTTL + time.Second)
	if _, err := e.pk.FinishLogin(ctx, id, resp, "192.0.2.1:1"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("finishing an expired login = %v, want ErrInvalid", err)
	}
}

func TestPasskeyLoginThrottledAndPolicy(t *testing.T) {
	e := newPasskeyEnv(t, Config{IPFailures: 2})
	ctx := context.Background()
	dev := passkeytest.New(testOrigin)
	if _, err := e.register(t, e.alice, dev, "key"); err != nil {
		t.Fatal(err)
	}
	dev.Origin = "https://localhost:1"
	for range 2 {
		if _, err := e.login(t, dev); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("bad login = %v", err)
		}
	}
	dev.Origin = testOrigin
	if _, err := e.login(t, dev); !errors.Is(err, ErrThrottled) {
		t.Fatalf("login after the address's failures = %v, want ErrThrottled", err)
	}

	// Login policy applies to passkeys: deny web logins for users.
	e2 := newPasskeyEnv(t, Config{})
	dev2 := passkeytest.New(testOrigin)
	if _, err := e2.register(t, e2.alice, dev2, "key"); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.svc.CreatePolicy(ctx, e2.admin, policy.Rule{
		Priority: 10, Effect: policy.Deny, Roles: []string{auth.RoleUser}, Actions: []string{policy.ActionLogin},
		ServiceNames: []string{WebServiceName},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.login(t, dev2); !errors.Is(err, ErrPolicyDenied) {
		t.Fatalf("login denied by policy = %v, want ErrPolicyDenied", err)
	}
}

func TestPasskeyManagement(t *testing.T) {
	e := newPasskeyEnv(t, Config{})
	ctx := context.Background()
	dev := passkeytest.New(testOrigin)
	info, err := e.register(t, e.alice, dev, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.Name, "Passkey added ") {
		t.Fatalf("default name %q", info.Name)
	}
	bob := passkeyHolder(t, e.svc, e.admin, "bob")
	if _, err := e.svc.ListPasskeys(ctx, bob, e.alice.Subject); !errors.Is(err, ErrForbidden) {
		t.Fatalf("bob lists alice's passkeys: %v", err)
	}
	if err := e.svc.DeletePasskey(ctx, bob, e.alice.Subject, info.ID); !errors.Is(err, ErrForbidden) {
		t.Fatalf("bob deletes alice's passkey: %v", err)
	}
	if _, err := e.svc.RenamePasskey(ctx, e.alice, e.alice.Subject, info.ID, "bad\nname"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("control characters in a name: %v", err)
	}
	if _, err := e.svc.RenamePasskey(ctx, e.alice, e.alice.Subject, "not base64!", "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("malformed credential id: %v", err)
	}
	renamed, err := e.svc.RenamePasskey(ctx, e.admin, e.alice.Subject, info.ID, "yubikey")
	if err != nil || renamed.Name != "yubikey" {
		t.Fatalf("admin rename = %+v, %v", renamed, err)
	}
	if err := e.svc.DeletePasskey(ctx, e.alice, e.alice.Subject, info.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeletePasskey(ctx, e.alice, e.alice.Subject, info.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice = %v, want ErrNotFound", err)
	}
	if _, err := e.login(t, dev); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login with a deleted passkey = %v, want ErrBadCredentials", err)
	}
}

func TestWebCSRFKeyIsStable(t *testing.T) {
	svc, _, _ := newService(t, Config{})
	a, err := svc.WebCSRFKey(context.Background())
	if err != nil || len(a) != 32 {
		t.Fatalf("key %d bytes, %v", len(a), err)
	}
	b, err := svc.WebCSRFKey(context.Background())
	if err != nil || !bytes.Equal(a, b) {
		t.Fatal("the CSRF key changed between calls")
	}
}

func TestPasskeyCeremoniesBoundedPerClient(t *testing.T) {
	e := newPasskeyEnv(t, Config{})
	ctx := context.Background()
	var ids []string
	for range maxCeremoniesPerClient {
		id, _, err := e.pk.BeginLogin(ctx, "198.51.100.7:1000")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, _, err := e.pk.BeginLogin(ctx, "198.51.100.7:2000"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("one address beyond its pending ceremonies = %v, want ErrThrottled", err)
	}
	if _, _, err := e.pk.BeginLogin(ctx, "198.51.100.8:1000"); err != nil {
		t.Fatalf("another address is not affected: %v", err)
	}
	// Finishing (even failing) frees the slot; so does expiry.
	if _, err := e.pk.FinishLogin(ctx, ids[0], []byte("{}"), "198.51.100.7:1000"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("finishing with garbage = %v", err)
	}
	if _, _, err := e.pk.BeginLogin(ctx, "198.51.100.7:1000"); err != nil {
		t.Fatalf("after one finished: %v", err)
	}
	e.clock.add(DefaultCeremonyTTL)
	for range maxCeremoniesPerClient {
		if _, _, err := e.pk.BeginLogin(ctx, "198.51.100.7:1000"); err != nil {
			t.Fatalf("after the pending ones expired: %v", err)
		}
	}
}
