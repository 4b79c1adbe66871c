package identity

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/password"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/totp"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const adminPW = "admin-password-123"

func fastParams() password.Params {
	return password.Params{Memory: 8 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

func newService(t *testing.T, cfg Config) (*Service, *store.Store, *auth.Identity) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "mcias.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg.Argon2 = fastParams()
	svc, err := New(ctx, st, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := svc.Bootstrap(ctx, "admin", adminPW)
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	if again, err := svc.Bootstrap(ctx, "other", adminPW); err != nil || again {
		t.Fatalf("second bootstrap changed something: %v %v", again, err)
	}
	iss, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW, RemoteIP: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := svc.ValidateToken(ctx, iss.Token)
	if err != nil || !admin.IsAdmin() {
		t.Fatalf("admin identity: %+v %v", admin, err)
	}
	return svc, st, admin
}

func TestLoginFailuresLookAlike(t *testing.T) {
	svc, _, admin := newService(t, Config{})
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "alice", AccountType: "human", Password: "alice-password-1"}); err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]LoginRequest{
		"unknown user":   {Username: "nobody", Password: "alice-password-1"},
		"wrong password": {Username: "alice", Password: "wrong-password-1"},
	} {
		if _, err := svc.Login(ctx, req); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %v", name, err)
		}
	}
	disabled := "disabled"
	if _, err := svc.UpdateAccount(ctx, admin, mustFind(t, svc, admin, "alice"), UpdateAccountRequest{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Login(ctx, LoginRequest{Username: "alice", Password: "alice-password-1"}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("disabled account: %v", err)
	}
}

func mustFind(t *testing.T, svc *Service, admin *auth.Identity, name string) string {
	t.Helper()
	a, err := svc.FindAccount(context.Background(), admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func TestParallelGuessesThrottled(t *testing.T) {
	svc, _, _ := newService(t, Config{AccountFailures: 4, IPFailures: 1000})
	ctx := context.Background()
	var bad, throttled atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Go(func() {
			_, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: "guess-guess-guess"})
			switch {
			case errors.Is(err, ErrBadCredentials):
				bad.Add(1)
			case errors.Is(err, ErrThrottled):
				throttled.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 4 || throttled.Load() != 36 {
		t.Fatalf("%d password checks, %d throttled; want exactly 4 checks", bad.Load(), throttled.Load())
	}
	// The right password is throttled too until the window passes.
	if _, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW}); !errors.Is(err, ErrThrottled) {
		t.Fatalf("login during lockout: %v", err)
	}
	if _, err := svc.Login(ctx, LoginRequest{Username: "ghost", Password: "x"}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unrelated name throttled: %v", err)
	}
}

func TestTOTPCodeAndRecoveryCodeAreSingleUseUnderRace(t *testing.T) {
	clk := &clock{t: time.Now()}
	svc, _, admin := newService(t, Config{Now: clk.now, AccountFailures: 1000})
	ctx := context.Background()
	e, err := svc.EnrollTOTP(ctx, admin, admin.Subject)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.Code(e.Secret, clk.now())
	codes, _, err := svc.ConfirmTOTP(ctx, admin, admin.Subject, code)
	if err != nil || len(codes) != RecoveryCodeCount {
		t.Fatalf("confirm: %d codes, %v", len(codes), err)
	}
	if _, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW}); !errors.Is(err, ErrTOTPRequired) {
		t.Fatalf("no code: %v", err)
	}
	clk.add(30 * time.Second)
	fresh, _ := totp.Code(e.Secret, clk.now())
	for name, second := range map[string]string{"totp": fresh, "recovery": codes[3]} {
		var ok atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Go(func() {
				if _, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW, TOTPCode: second}); err == nil {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Errorf("%s code accepted %d times in parallel, want once", name, ok.Load())
		}
	}
	// The confirmation code's step was consumed by the confirmation.
	if _, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW, TOTPCode: code}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old code: %v", err)
	}
}

func TestLastAdminGuard(t *testing.T) {
	svc, _, admin := newService(t, Config{})
	ctx := context.Background()
	disabled, noRoles := "disabled", []string{"user"}
	for name, req := range map[string]UpdateAccountRequest{"disable": {Status: &disabled}, "demote": {Roles: &noRoles}} {
		if _, err := svc.UpdateAccount(ctx, admin, admin.Subject, req); !errors.Is(err, ErrConflict) {
			t.Errorf("%s last admin: %v", name, err)
		}
	}
	if err := svc.DeleteAccount(ctx, admin, admin.Subject); !errors.Is(err, ErrConflict) {
		t.Errorf("delete last admin: %v", err)
	}
	if _, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "root2", AccountType: "human", Password: "second-admin-pw", Roles: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UpdateAccount(ctx, admin, admin.Subject, UpdateAccountRequest{Roles: &noRoles}); err != nil {
		t.Fatalf("demote with a second admin present: %v", err)
	}
}

func TestRecoverAdminOpensADenyAllPolicy(t *testing.T) {
	svc, st, admin := newService(t, Config{})
	ctx := context.Background()
	if _, err := svc.CreatePolicy(ctx, admin, policy.Rule{Priority: 0, Effect: policy.Deny, Description: "lock everyone out"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW, ServiceName: "mciasctl"}); !errors.Is(err, ErrPolicyDenied) {
		t.Fatalf("deny-all: %v", err)
	}
	added, err := svc.RecoverAdmin(ctx, "admin", "recovered-password-1")
	if err != nil || !added {
		t.Fatalf("recover: %v %v", added, err)
	}
	rules, _ := st.ListPolicies(ctx)
	if len(rules) != 3 {
		t.Fatalf("rules after recovery: %+v", rules)
	}
	if _, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: "recovered-password-1", ServiceName: "mciasctl"}); err != nil {
		t.Fatalf("login after recovery: %v", err)
	}
	if _, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: "recovered-password-1", ServiceName: "mcns"}); !errors.Is(err, ErrPolicyDenied) {
		t.Fatalf("break-glass rule must be narrow: %v", err)
	}
	if added, err := svc.RecoverAdmin(ctx, "admin", "recovered-password-2"); err != nil || added {
		t.Fatalf("second recovery added another rule: %v %v", added, err)
	}
}

func TestKeyRotationAndPrune(t *testing.T) {
	clk := &clock{t: time.Now()}
	svc, _, admin := newService(t, Config{Now: clk.now, HumanTTL: time.Hour, SystemTTL: 2 * time.Hour})
	ctx := context.Background()
	old, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RotateKey(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ValidateToken(ctx, old.Token); err != nil {
		t.Fatalf("token signed by the previous key: %v", err)
	}
	if n := len(svc.JWKS().Keys); n != 2 {
		t.Fatalf("jwks has %d keys", n)
	}
	clk.add(2*time.Hour + time.Minute)
	if err := svc.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(svc.JWKS().Keys); n != 1 {
		t.Fatalf("after prune jwks has %d keys, want only the active one", n)
	}
	if _, err := svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPW}); err != nil {
		t.Fatalf("login after prune: %v", err)
	}
}

func TestSystemAccounts(t *testing.T) {
	svc, _, admin := newService(t, Config{})
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "svc", AccountType: "system", Roles: []string{"admin"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("system account with roles: %v", err)
	}
	a, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: "mcp-agent", AccountType: "system"})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := svc.IssueSystemToken(ctx, admin, a.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.ValidateToken(ctx, iss.Token)
	if err != nil || id.AccountType != "system" || len(id.Roles) != 0 || time.Until(id.ExpiresAt) < 364*24*time.Hour {
		t.Fatalf("system token: %+v %v", id, err)
	}
	if _, err := svc.IssueSystemToken(ctx, id, a.ID, 0); !errors.Is(err, ErrForbidden) {
		t.Fatalf("non-admin issued a token: %v", err)
	}
	if _, err := svc.Login(ctx, LoginRequest{Username: "mcp-agent", Password: ""}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("password-less system login: %v", err)
	}
}

func TestSecretRechecksAreThrottled(t *testing.T) {
	svc, _, admin := newService(t, Config{AccountFailures: 3})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := svc.ChangePassword(ctx, admin, admin.Subject, "wrong-current-pw", "new-password-123"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := svc.ChangePassword(ctx, admin, admin.Subject, adminPW, "new-password-123"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("a stolen token could keep guessing the password: %v", err)
	}
}

// TestErrorKinds pins the API kind and the text callers see of the
// domain's errors: opaque ones never show what wraps them, throttling
// carries the retry delay, and an invalid token is also mcdsl/auth's
// sentinel (auth.Middleware answers 401 for it).
func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		err   error
		kind  apierr.Kind
		msg   string
		retry time.Duration
	}{
		{fmt.Errorf("%w: no such user bob", ErrBadCredentials), apierr.Unauthenticated, "invalid credentials", 0},
		{ErrTOTPRequired, apierr.Unauthenticated, "totp code required", 0},
		{fmt.Errorf("rule 7: %w", ErrPolicyDenied), apierr.Denied, "login denied by policy", 0},
		{fmt.Errorf("%w: not an admin", ErrForbidden), apierr.Denied, "forbidden", 0},
		{errThrottled, apierr.Throttled, "too many failed attempts; try again later", RetryAfter},
		{errBusy, apierr.Unavailable, "too many password checks in progress; try again shortly", BusyRetryAfter},
		{ErrInvalidToken, apierr.Unauthenticated, "invalid or expired token", 0},
		{invalid("username %q", "X"), apierr.Invalid, `invalid request: username "X"`, 0},
		{fmt.Errorf("%w: account x", ErrNotFound), apierr.NotFound, "not found: account x", 0},
		{fmt.Errorf("%w: last admin", ErrConflict), apierr.Conflict, "conflict: last admin", 0},
		{ErrInvalidGrant, apierr.Invalid, "invalid request: invalid_grant", 0},
	} {
		st := apierr.Describe(tc.err)
		if st.Kind != tc.kind || st.Message != tc.msg || st.RetryAfter != tc.retry {
			t.Errorf("%v: %+v; want %v %q retry %v", tc.err, st, tc.kind, tc.msg, tc.retry)
		}
	}
	if !errors.Is(ErrInvalidToken, auth.ErrInvalidToken) || !errors.Is(fmt.Errorf("x: %w", ErrInvalidToken), ErrInvalidToken) {
		t.Error("ErrInvalidToken must match itself and auth.ErrInvalidToken")
	}
	if !errors.Is(errThrottled, ErrThrottled) {
		t.Error("the throttled answer must match ErrThrottled")
	}
}
