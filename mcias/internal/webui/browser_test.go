package webui_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"git.metacircular.net/metacircular/mcias/internal/store"
)

// chromiumPath is Debian's Chromium, installed by `scripts/deps.sh test`.
const chromiumPath = "/usr/bin/chromium"

// trustingHome makes a HOME whose NSS database trusts caFile, which is
// where Chromium on Linux looks for locally added roots. WebAuthn only runs
// in a secure context without certificate errors, so the browser must
// really trust the test CA; --ignore-certificate-errors would not do.
func trustingHome(t *testing.T, caFile string) string {
	t.Helper()
	certutil := testtool.Require(t, "certutil")
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", "sql:" + db, "-N", "--empty-password"},
		{"-d", "sql:" + db, "-A", "-t", "C,,", "-n", "test", "-i", caFile},
	} {
		cmd := exec.CommandContext(t.Context(), certutil, args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	return home
}

// waitTrue evaluates expr until it is true, across navigations (a page
// being replaced makes an evaluation fail; that is retried).
func waitTrue(ctx context.Context, expr string) error {
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("waiting for %s: %w (last evaluation: %v)", expr, ctx.Err(), err) //nolint:errorlint // the deadline is the error; the evaluation is context
			}
			return fmt.Errorf("waiting for %s: %w", expr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestBrowserPasskeyFlow drives headless Chromium with a virtual WebAuthn
// authenticator (DevTools WebAuthn domain): password sign-in, adding a
// passkey on /account, signing out, and signing in again with the passkey
// alone, usernameless.
func TestBrowserPasskeyFlow(t *testing.T) {
	chromium := testtool.Require(t, chromiumPath)
	e := start(t)
	home := trustingHome(t, e.pki.CAFile)
	b := e.browser(t)
	admin := b.token(adminUser, adminPassword)
	b.createUser(admin, "alice")

	var browserLog bytes.Buffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("HOME="+home),
		chromedp.CombinedOutput(&browserLog),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// Starts the browser, bound to bctx (not to the timeout below).
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, browserLog.String())
	}
	ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
	defer cancel()
	fail := func(step string, err error) {
		t.Helper()
		status, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.getElementById("passkey-status") || {}).textContent || ""`))
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		t.Fatalf("%s: %v\npage %s, passkey status %q\nbrowser output:\n%s", step, err, loc, status, browserLog.String())
	}

	// A platform authenticator with resident keys and user verification,
	// whose credentials report backup eligible and backed up.
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		fail("WebAuthn.enable", err)
	}
	auth, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
			DefaultBackupEligibility: true, DefaultBackupState: true,
		},
	})
	if err != nil {
		fail("WebAuthn.addVirtualAuthenticator", err)
	}

	// 1. Password sign-in over real HTTPS (the page must be a secure
	// context for WebAuthn: isSecureContext is checked below).
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.origin+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), userPassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
	); err != nil {
		fail("password sign-in", err)
	}
	if err := waitTrue(ctx, `location.pathname === "/account" && window.isSecureContext && !!document.getElementById("passkey-add") && !document.getElementById("passkey-add-box").hidden`); err != nil {
		fail("account page with the passkey button", err)
	}

	// 2. Add a passkey.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("passkey-name"), "browser key"),
		chromedp.Click(chromedp.ID("passkey-add")),
	); err != nil {
		fail("add passkey", err)
	}
	if err := waitTrue(ctx, `[...document.querySelectorAll("li.card .name")].some(n => n.textContent === "browser key")`); err != nil {
		fail("passkey listed on /account", err)
	}
	creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(auth))
	if err != nil {
		fail("WebAuthn.getCredentials", err)
	}
	if len(creds.Credentials) != 1 {
		t.Fatalf("the authenticator holds %d credentials, want 1", len(creds.Credentials))
	}
	cred := creds.Credentials[0]
	if !cred.IsResidentCredential || cred.RpID != "localhost" || len(cred.UserHandle) == 0 || len(cred.UserHandle) > 64 ||
		bytes.Contains(cred.UserHandle, []byte("alice")) {
		t.Fatalf("credential: resident %v, rp %q, user handle %q", cred.IsResidentCredential, cred.RpID, cred.UserHandle)
	}

	// 3. Sign out; the account page now sends the browser to the login
	// page, which comes back to /account after signing in.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`form[action="/logout"] button`))); err != nil {
		fail("sign out", err)
	}
	if err := waitTrue(ctx, `location.pathname === "/login"`); err != nil {
		fail("signed out", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.origin+"/account")); err != nil {
		fail("open /account signed out", err)
	}
	if err := waitTrue(ctx, `location.pathname === "/login" && location.search === "?next=%2Faccount" && !document.getElementById("passkey-login-box").hidden`); err != nil {
		fail("redirect to the login page", err)
	}

	// 4. Sign in with the passkey alone: no username typed.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("passkey-login"))); err != nil {
		fail("passkey sign-in", err)
	}
	if err := waitTrue(ctx, `location.pathname === "/account" && document.querySelector("nav a[href='/account']").textContent === "alice"`); err != nil {
		fail("signed in as alice with the passkey", err)
	}

	// The stored credential row: backup flags as the authenticator
	// reported them, counter and last use updated by the login.
	st, err := store.Open(t.Context(), e.dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, err := st.GetAccountByUsername(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := st.ListPasskeys(t.Context(), acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d passkeys stored, want 1", len(rows))
	}
	p := rows[0]
	if !bytes.Equal(p.CredentialID, cred.CredentialID) || p.Name != "browser key" || !p.BackupEligible || !p.BackupState ||
		p.LastUsedAt == nil || !slices.Contains(p.Transports, "internal") {
		t.Fatalf("stored passkey %+v", p)
	}
	handle, err := st.UserHandle(t.Context(), acct.ID)
	if err != nil || !bytes.Equal(handle, cred.UserHandle) {
		t.Fatalf("stored user handle %x (%v), authenticator has %x", handle, err, cred.UserHandle)
	}
}
