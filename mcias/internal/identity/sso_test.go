package identity

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

var (
	ssoWiki  = SSOClient{ClientID: "wiki", RedirectURI: "https://wiki.example/sso/callback", ServiceName: "wiki"}
	ssoBoard = SSOClient{ClientID: "board", RedirectURI: "https://board.example/sso/callback", ServiceName: "board"}
)

// ssoUser creates a user and returns its identity as a session would carry
// it.
func ssoUser(t *testing.T, svc *Service, admin *auth.Identity, name string) *auth.Identity {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, admin, CreateAccountRequest{Username: name, AccountType: "human", Password: name + "-password-1", Roles: []string{"user"}}); err != nil {
		t.Fatal(err)
	}
	iss, err := svc.Login(ctx, LoginRequest{Username: name, Password: name + "-password-1", RemoteIP: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.ValidateToken(ctx, iss.Token)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func countCodes(t *testing.T, st *store.Store) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM sso_codes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSSOCodeExchange(t *testing.T) {
	svc, st, admin := newService(t, Config{})
	ctx := context.Background()
	alice := ssoUser(t, svc, admin, "alice")

	code, err := svc.IssueSSOCode(ctx, alice, ssoWiki)
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 43 {
		t.Fatalf("code %d characters; want 43 (32 bytes base64url)", len(code))
	}
	var stored string
	if err := st.DB().QueryRowContext(ctx, `SELECT code_hash FROM sso_codes`).Scan(&stored); err != nil || stored == code || stored != hashCode(code) {
		t.Fatalf("stored code %q (%v); want only its SHA-256", stored, err)
	}

	// Mismatches are refused and do not consume the code.
	for name, try := range map[string]struct {
		c        SSOClient
		redirect string
	}{
		"other client":             {ssoBoard, ssoWiki.RedirectURI},
		"other redirect":           {ssoWiki, ssoBoard.RedirectURI},
		"redirect with extra byte": {ssoWiki, ssoWiki.RedirectURI + "/"},
		"redirect other case":      {ssoWiki, "https://WIKI.example/sso/callback"},
	} {
		if _, err := svc.ExchangeSSOCode(ctx, try.c, code, try.redirect); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("%s: %v; want ErrInvalidGrant", name, err)
		}
	}
	if _, err := svc.ExchangeSSOCode(ctx, ssoWiki, code+"x", ssoWiki.RedirectURI); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("unknown code: %v; want ErrInvalidGrant", err)
	}

	iss, err := svc.ExchangeSSOCode(ctx, ssoWiki, code, ssoWiki.RedirectURI)
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.ValidateToken(ctx, iss.Token)
	if err != nil || id.Subject != alice.Subject || id.Username != "alice" {
		t.Fatalf("exchanged token validates as %+v, %v", id, err)
	}
	toks, err := svc.ListTokens(ctx, alice, alice.Subject)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, tk := range toks {
		kinds[tk.JTI] = tk.Kind
	}
	if kinds[iss.JTI] != store.KindSSO {
		t.Fatalf("token kind %q; want %q", kinds[iss.JTI], store.KindSSO)
	}

	// A replay is refused and revokes what the code produced.
	if _, err := svc.ExchangeSSOCode(ctx, ssoWiki, code, ssoWiki.RedirectURI); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("replay: %v; want ErrInvalidGrant", err)
	}
	if _, err := svc.ValidateToken(ctx, iss.Token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of a replayed code: %v; want ErrInvalidToken", err)
	}

	if _, err := svc.ExchangeSSOCode(ctx, ssoWiki, "", ssoWiki.RedirectURI); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty code: %v; want ErrInvalid", err)
	}
}

func TestSSOCodeExpiresAndIsPruned(t *testing.T) {
	clk := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	svc, st, admin := newService(t, Config{Now: clk.now})
	ctx := context.Background()
	alice := ssoUser(t, svc, admin, "alice")

	late, err := svc.IssueSSOCode(ctx, alice, ssoWiki)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(SSOCodeTTL - time.Millisecond)
	inTime, err := svc.IssueSSOCode(ctx, alice, ssoWiki)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ExchangeSSOCode(ctx, ssoWiki, inTime, ssoWiki.RedirectURI); err != nil {
		t.Fatalf("code inside its lifetime: %v", err)
	}
	clk.add(time.Millisecond)
	if _, err := svc.ExchangeSSOCode(ctx, ssoWiki, late, ssoWiki.RedirectURI); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("code at its expiry: %v; want ErrInvalidGrant", err)
	}
	if n := countCodes(t, st); n != 2 {
		t.Fatalf("%d codes before prune; want 2", n)
	}
	if err := svc.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countCodes(t, st); n != 1 {
		t.Fatalf("%d codes after the first expired; want 1", n)
	}
	clk.add(SSOCodeTTL)
	if err := svc.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countCodes(t, st); n != 0 {
		t.Fatalf("%d codes after both expired; want 0", n)
	}
}

func TestSSOCodePolicyAndAccountState(t *testing.T) {
	svc, _, admin := newService(t, Config{})
	ctx := context.Background()
	alice := ssoUser(t, svc, admin, "alice")
	if _, err := svc.CreatePolicy(ctx, admin, policy.Rule{
		Priority: 10, Effect: policy.Deny, Actions: []string{policy.ActionLogin}, ServiceNames: []string{ssoBoard.ServiceName},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.IssueSSOCode(ctx, alice, ssoBoard); !errors.Is(err, ErrPolicyDenied) {
		t.Fatalf("code for a denied service: %v; want ErrPolicyDenied", err)
	}

	code, err := svc.IssueSSOCode(ctx, alice, ssoWiki)
	if err != nil {
		t.Fatal(err)
	}
	disabled := store.StatusDisabled
	if _, err := svc.UpdateAccount(ctx, admin, alice.Subject, UpdateAccountRequest{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ExchangeSSOCode(ctx, ssoWiki, code, ssoWiki.RedirectURI); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("code of a disabled account: %v; want ErrInvalidGrant", err)
	}
}

func TestSSOCodeParallelExchange(t *testing.T) {
	svc, _, admin := newService(t, Config{})
	ctx := context.Background()
	alice := ssoUser(t, svc, admin, "alice")
	code, err := svc.IssueSSOCode(ctx, alice, ssoWiki)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []Issued
		errs []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			iss, err := svc.ExchangeSSOCode(ctx, ssoWiki, code, ssoWiki.RedirectURI)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won = append(won, iss)
			} else {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d exchanges succeeded; want exactly 1 (errors: %v)", len(won), errs)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("losing exchange: %v; want ErrInvalidGrant", err)
		}
	}
	// The losers are replays: the winner's token does not survive them.
	if _, err := svc.ValidateToken(ctx, won[0].Token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("winner's token after replays: %v; want ErrInvalidToken", err)
	}
}
