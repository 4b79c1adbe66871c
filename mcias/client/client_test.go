package client_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcias/client"
	"git.metacircular.net/metacircular/mcias/internal/server"
	"git.metacircular.net/metacircular/mcias/internal/totp"
)

const adminPassword = "admin-password-123"

// start runs a real MCIAS with a bootstrapped admin on loopback until the
// test ends and returns its gRPC address and the CA file.
func start(t *testing.T) (addr, caFile string) {
	t.Helper()
	dir := t.TempDir()
	pki := tlstest.New(t)
	pair := pki.Issue(t, "mcias", "127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "mcias.toml")
	toml := fmt.Sprintf(`[server]
grpc_addr = %q
tls_cert = %q
tls_key = %q
shutdown_timeout = "5s"
[database]
path = %q
[argon2]
memory_kib = 8192
iterations = 1
parallelism = 1
[throttle]
account_failures = 3
ip_failures = 1000
`, ln.Addr().String(), pair.CertFile, pair.KeyFile, filepath.Join(dir, "mcias.db"))
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(adminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Init(t.Context(), cfg, "admin", pwFile, io.Discard); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{Name: server.ServiceName, Listeners: map[string]net.Listener{"grpc": ln}},
			func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, cfg, rt) })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("service.Run did not return after cancel")
		}
	})
	return ln.Addr().String(), pki.CAFile
}

func newClient(t *testing.T, addr, caFile, token string) *client.Client {
	t.Helper()
	c, err := client.New(addr, caFile, token)
	if err != nil {
		t.Fatal(err)
	}
	// Closed before the server stops (cleanups run last first).
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestCLILogin: the login other platform CLIs use (mcdsl/cli.LoginFunc),
// including the answer that makes them ask for a TOTP code.
func TestCLILogin(t *testing.T) {
	addr, caFile := start(t)
	ctx := t.Context()

	tok, exp, err := client.CLILogin(ctx, addr, caFile, cli.LoginRequest{Username: "admin", Password: adminPassword, ServiceName: "mcnsctl"})
	if err != nil || strings.Count(tok, ".") != 2 || time.Until(exp) < 11*time.Hour {
		t.Fatalf("CLILogin = %q, %v, %v", tok, exp, err)
	}
	_, _, err = client.CLILogin(ctx, addr, caFile, cli.LoginRequest{Username: "admin", Password: "wrong-password!"})
	if client.KindOf(err) != apierr.Unauthenticated || !strings.Contains(err.Error(), "invalid credentials") {
		t.Fatalf("wrong password: %v (kind %v); want Unauthenticated invalid credentials", err, client.KindOf(err))
	}

	admin := newClient(t, addr, caFile, tok)
	if _, err := admin.CreateAccount(ctx, client.CreateAccountRequest{Username: "tess", AccountType: "human", Password: "tess-password-123"}); err != nil {
		t.Fatal(err)
	}
	tess := newClient(t, addr, caFile, "")
	if _, err := tess.Login(ctx, client.LoginRequest{Username: "tess", Password: "tess-password-123"}); err != nil {
		t.Fatal(err)
	}
	me, err := tess.WhoAmI(ctx)
	if err != nil || !me.Valid || me.Username != "tess" {
		t.Fatalf("WhoAmI = %+v, %v", me, err)
	}
	enr, err := tess.EnrollTOTP(ctx, "tess")
	if err != nil {
		t.Fatal(err)
	}
	now, err := totp.Code(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var switched []client.Token
	tess.OnToken(func(tk client.Token) { switched = append(switched, tk) })
	if _, err := tess.ConfirmTOTP(ctx, me.Subject, now); err != nil {
		t.Fatal(err)
	}
	// Turning TOTP on revoked tess's token; the client switched to the
	// one the answer carried, and told OnToken.
	if me, err := tess.WhoAmI(ctx); err != nil || me.Username != "tess" || len(switched) != 1 || switched[0].Token == "" {
		t.Fatalf("after ConfirmTOTP: WhoAmI %+v, %v; tokens switched to: %d", me, err, len(switched))
	}
	if pw, err := tess.ChangePassword(ctx, "tess", "tess-password-123", "tess-password-456"); err != nil || pw.Token == "" || len(switched) != 2 {
		t.Fatalf("ChangePassword = %+v, %v", pw, err)
	}
	if _, err := tess.WhoAmI(ctx); err != nil {
		t.Fatalf("WhoAmI after ChangePassword: %v", err)
	}
	if _, err := tess.ChangePassword(ctx, "tess", "tess-password-456", "tess-password-123"); err != nil {
		t.Fatal(err)
	}
	// What mcdsl/cli's login command checks before asking for a code.
	_, _, err = client.CLILogin(ctx, addr, caFile, cli.LoginRequest{Username: "tess", Password: "tess-password-123"})
	if client.KindOf(err) != apierr.Unauthenticated || !strings.Contains(strings.ToLower(err.Error()), "totp") {
		t.Fatalf("login without a code: %v (kind %v); want Unauthenticated mentioning totp", err, client.KindOf(err))
	}
	next, err := totp.Code(enr.Secret, time.Now().Add(totp.Period))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := client.CLILogin(ctx, addr, caFile, cli.LoginRequest{Username: "tess", Password: "tess-password-123", TOTPCode: next}); err != nil {
		t.Fatalf("login with a code: %v", err)
	}
}

func TestClientAdmin(t *testing.T) {
	addr, caFile := start(t)
	ctx := t.Context()
	if _, err := client.New("https://"+addr, caFile, ""); err == nil {
		t.Fatal("New accepted a URL; the address is host:port")
	}
	c := newClient(t, addr, caFile, "")
	if _, err := c.ListAccounts(ctx); client.KindOf(err) != apierr.Unauthenticated {
		t.Fatalf("ListAccounts without a token: %v; want Unauthenticated", err)
	}
	login, err := c.Login(ctx, client.LoginRequest{Username: "admin", Password: adminPassword})
	if err != nil {
		t.Fatal(err)
	}

	a, err := c.CreateAccount(ctx, client.CreateAccountRequest{Username: "uma", AccountType: "human", Password: "uma-password-1234", Roles: []string{"user", "guest"}})
	if err != nil || !slices.Equal(a.Roles, []string{"guest", "user"}) {
		t.Fatalf("CreateAccount = %+v, %v", a, err)
	}
	if _, err := c.CreateAccount(ctx, client.CreateAccountRequest{Username: "uma", AccountType: "human", Password: "uma-password-1234"}); client.KindOf(err) != apierr.Conflict {
		t.Fatalf("duplicate: %v; want Conflict", err)
	}
	none := []string{}
	if a, err = c.UpdateAccount(ctx, "uma", client.UpdateAccountRequest{Roles: &none}); err != nil || len(a.Roles) != 0 || a.Roles == nil {
		t.Fatalf("UpdateAccount(no roles) = %+v, %v", a, err)
	}
	if a, err = c.SetRoles(ctx, a.ID, []string{"user"}); err != nil || !slices.Equal(a.Roles, []string{"user"}) {
		t.Fatalf("SetRoles = %+v, %v", a, err)
	}
	if _, err := c.GetAccount(ctx, "nobody"); client.KindOf(err) != apierr.NotFound {
		t.Fatalf("GetAccount(nobody): %v; want NotFound", err)
	}

	if _, err := c.CreateAccount(ctx, client.CreateAccountRequest{Username: "bot", AccountType: "system"}); err != nil {
		t.Fatal(err)
	}
	sys, err := c.IssueSystemToken(ctx, "bot", 2*time.Hour)
	if err != nil || time.Until(sys.ExpiresAt) > 2*time.Hour || time.Until(sys.ExpiresAt) < 119*time.Minute {
		t.Fatalf("IssueSystemToken(2h) = %+v, %v", sys, err)
	}
	v, err := c.Validate(ctx, sys.Token)
	if err != nil || !v.Valid || v.AccountType != "system" || v.Roles == nil || len(v.Roles) != 0 {
		t.Fatalf("Validate(system token) = %+v, %v", v, err)
	}
	if v, err := c.Validate(ctx, "garbage"); err != nil || v.Valid {
		t.Fatalf("Validate(garbage) = %+v, %v", v, err)
	}
	toks, err := c.ListTokens(ctx, "bot")
	if err != nil || len(toks) != 1 || toks[0].Kind != "system" || toks[0].RevokedAt != nil {
		t.Fatalf("ListTokens = %+v, %v", toks, err)
	}

	p, err := c.CreatePolicy(ctx, client.Policy{Priority: 5, Effect: "deny", Roles: []string{"guest"}, ServiceNames: []string{"mcp"}})
	if err != nil || p.ID == 0 {
		t.Fatalf("CreatePolicy = %+v, %v", p, err)
	}
	if _, err := c.CreatePolicy(ctx, client.Policy{Effect: "maybe"}); client.KindOf(err) != apierr.Invalid || !strings.Contains(err.Error(), "effect") {
		t.Fatalf("invalid rule: %v; want Invalid naming the effect", err)
	}
	p.Effect = "allow"
	if p, err = c.UpdatePolicy(ctx, p); err != nil || p.Effect != "allow" {
		t.Fatalf("UpdatePolicy = %+v, %v", p, err)
	}
	if err := c.DeletePolicy(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPolicy(ctx, p.ID); client.KindOf(err) != apierr.NotFound {
		t.Fatalf("GetPolicy after delete: %v; want NotFound", err)
	}

	k, err := c.RotateKey(ctx)
	if err != nil || !k.Active {
		t.Fatalf("RotateKey = %+v, %v", k, err)
	}
	if keys, err := c.ListKeys(ctx); err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}

	renewed, err := c.Renew(ctx)
	if err != nil || renewed.Token == login.Token {
		t.Fatalf("Renew = %+v, %v", renewed, err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WhoAmI(ctx); client.KindOf(err) != apierr.Unauthenticated {
		t.Fatalf("WhoAmI after Logout: %v; want Unauthenticated", err)
	}
}
