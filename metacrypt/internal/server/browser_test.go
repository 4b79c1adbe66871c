package server_test

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/metacrypt/client"
)

// trustingHome makes a HOME whose NSS database trusts the test CA (where
// Chromium on Linux looks for local roots).
func trustingHome(t *testing.T) string {
	t.Helper()
	certutil := testtool.Require(t, "certutil")
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", "sql:" + db, "-N", "--empty-password"},
		{"-d", "sql:" + db, "-A", "-t", "C,,", "-n", "test", "-i", env.ca.CertPath()},
	} {
		cmd := exec.CommandContext(t.Context(), certutil, args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	return home
}

// waitTrue evaluates expr until it is true, across navigations.
func waitTrue(ctx context.Context, expr string) error {
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", expr, ctx.Err(), err) //nolint:errorlint // the deadline is the error
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// text is the inner text of the element with id, "" if there is none.
func text(id string) string {
	return `(document.getElementById("` + id + `") ? document.getElementById("` + id + `").innerText : "")`
}

// ssoLnTaken says a browser test has served on env.webLn (and its
// harness closed it when it stopped).
var ssoLnTaken bool

// ssoListener is a listener on the address MCIAS has Metacrypt's SSO
// redirect URI for: env.webLn for the first browser test, then the same
// address bound again, so each browser test can sign in whatever order
// they run in.
func ssoListener(t *testing.T) net.Listener {
	t.Helper()
	if !ssoLnTaken {
		ssoLnTaken = true
		return env.webLn
	}
	ln, err := net.Listen("tcp", env.webLn.Addr().String())
	if err != nil {
		t.Fatalf("bind the SSO redirect address again: %v", err)
	}
	return ln
}

// tab is a headless Chromium tab (TLS verified against the test CA,
// through an NSS database) driven by a test.
type tab struct {
	t *testing.T
	// ctx bounds the test's steps; raw outlives it, for failure reports.
	ctx, raw context.Context
}

// openBrowser starts Chromium for the test; its steps must be done
// within timeout.
func openBrowser(t *testing.T, timeout time.Duration) *tab {
	t.Helper()
	chromium := testtool.Require(t, "/usr/bin/chromium")
	home := trustingHome(t)
	var browserLog bytes.Buffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Flag("headless", true), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.Env("HOME="+home),
		chromedp.CombinedOutput(&browserLog),
	)
	t.Cleanup(cancelAlloc)
	raw, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(raw); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, browserLog.String())
	}
	ctx, cancel := context.WithTimeout(raw, timeout)
	t.Cleanup(cancel)
	return &tab{t: t, ctx: ctx, raw: raw}
}

// fail ends the test at step, with the page's address and text.
func (b *tab) fail(step string, err error) {
	b.t.Helper()
	loc, _ := chromedp.Run(b.raw, chromedp.Location())
	body, _ := chromedp.Run(b.raw, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("%s: %v\npage %s:\n%s", step, err, loc, tail(body, 3000))
}

// step runs actions (navigations, typing, clicks), then waits until the
// JavaScript condition cond holds on the page they lead to.
func (b *tab) step(what, cond string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.fail(what, err)
	}
	if err := waitTrue(b.ctx, cond); err != nil {
		b.fail(what, err)
	}
}

// text is the text of the element with id on the page.
func (b *tab) text(what, id string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("#"+id)))
	if err != nil {
		b.fail(what, err)
	}
	return s
}

// TestBrowserUnsealIssueRevoke drives the web UI in headless Chromium
// (TLS verified against the test CA) from a fresh browser: Metacrypt
// restarted (so sealed), sign-in through MCIAS SSO as alice, unseal
// through the form, a name outside alice's limits refused with the API's
// answer, a certificate issued for an allowed name (key shown and
// downloadable), found in the list, revoked with a reason, and the
// revocation seen over the API and in the issuer's CRL.
func TestBrowserUnsealIssueRevoke(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	adm := h.client(t, admin)
	if _, err := adm.CreateRule(ctx, client.Rule{Priority: 10, Effect: "allow", Subject: client.Subject{Accounts: []string{alice}},
		Mounts: []string{"pki"}, Operations: []string{"issue", "revoke"}, Resources: []string{"issuer/services"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateLimit(ctx, client.Limit{Priority: 10, Effect: "allow", Subject: client.Subject{Accounts: []string{alice}},
		Names: []string{"*.web." + domain}}); err != nil {
		t.Fatal(err)
	}
	// Restart on the listener MCIAS knows the redirect URI of: sealed.
	h.httpLn, h.extra = ssoListener(t), webTOML(env.webLn.Addr().String())
	h.restart(t)
	adm = h.client(t, admin) // the restart moved the gRPC listener
	if st, err := adm.Status(ctx); err != nil || !st.Sealed {
		t.Fatalf("after the restart: %+v %v", st, err)
	}

	b := openBrowser(t, 60*time.Second)
	step := b.step
	host := env.webLn.Addr().String()

	// Sign in from scratch: Metacrypt → MCIAS authorize → MCIAS's login
	// form → Metacrypt's callback with a code.
	step("sign-in page", `location.pathname === "/login" && !!document.querySelector('input[name="username"]')`,
		chromedp.Navigate(h.rest+"/mounts/pki/certs"), chromedp.Click(chromedp.CSS(`#signin`)))
	// The stylesheet applies: CSP allows the page's own origin.
	step("MCIAS login", `location.host === "`+host+`" && `+text("whoami")+` === "alice" && `+text("seal-state")+` === "sealed" && `+
		`getComputedStyle(document.querySelector("header")).backgroundColor === "rgb(255, 255, 255)"`,
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), alice),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), alice+"-password-123"),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
	// A page that needs the barrier offers the unseal form.
	step("sealed page", `!!document.getElementById("sealed") && !!document.querySelector('#unseal input[name="password"]')`,
		chromedp.Navigate(h.rest+"/mounts/pki/issue"))
	step("unseal", `location.pathname === "/mounts/pki/issue" && `+text("flash")+` === "Unsealed." && !!document.getElementById("issue")`,
		chromedp.SendKeys(chromedp.CSS(`#unseal input[name="password"]`), unsealPassword),
		chromedp.Click(chromedp.CSS(`#unseal button[type="submit"]`)))
	// A name outside alice's limits: the API's refusal, nothing issued.
	step("refused name", text("error")+`.includes("403 Forbidden") && `+text("error")+`.includes("app.svc.`+domain+`") && !document.getElementById("key")`,
		chromedp.SetValue(chromedp.CSS(`#issue select[name="issuer"]`), "services"),
		chromedp.SendKeys(chromedp.CSS(`#issue textarea[name="dns_names"]`), "app.svc."+domain),
		chromedp.Click(chromedp.CSS(`#issue button[type="submit"]`)))
	name := "app.web." + domain
	step("issue", text("key")+`.includes("BEGIN PRIVATE KEY") && `+text("chain")+`.includes("BEGIN CERTIFICATE") && `+
		`document.getElementById("download-key").href.startsWith("data:application/x-pem-file;base64,")`,
		chromedp.SetValue(chromedp.CSS(`#issue textarea[name="dns_names"]`), name),
		chromedp.SetValue(chromedp.CSS(`#issue select[name="key_type"]`), "ed25519"),
		chromedp.Click(chromedp.CSS(`#issue button[type="submit"]`)))
	serial := b.text("serial", "serial")
	issued, err := adm.Certificate(ctx, "pki", serial)
	if err != nil || issued.RequestedBy != alice || issued.KeyType != "ed25519" || len(issued.DNSNames) != 1 || issued.DNSNames[0] != name || issued.Revoked {
		t.Fatalf("issued through the browser: %+v %v", issued, err)
	}
	// Found by name in the list, then revoked from its page.
	step("search", `location.search.startsWith("?q=app.web.") && `+text("certs")+`.includes("`+serial+`")`,
		chromedp.Navigate(h.rest+"/mounts/pki/certs"),
		chromedp.SendKeys(chromedp.CSS(`#search input[name="q"]`), name),
		chromedp.Click(chromedp.CSS(`#search button[type="submit"]`)))
	step("certificate page", `!!document.getElementById("revoke") && `+text("cert-status")+`.startsWith("valid")`,
		chromedp.Click(chromedp.CSS(`#certs a[href="/mounts/pki/certs/`+serial+`"]`)))
	step("revoke", text("flash")+`.includes("revoked") && `+text("cert-status")+`.startsWith("revoked: key-compromise") && !document.getElementById("revoke")`,
		chromedp.SetValue(chromedp.CSS(`#revoke select[name="reason"]`), "key-compromise"),
		chromedp.Click(chromedp.CSS(`#revoke button[type="submit"]`)))
	step("revoked in the list", text("certs")+`.includes("revoked (key-compromise)")`,
		chromedp.Navigate(h.rest+"/mounts/pki/certs?status=revoked"))

	// The revocation, seen from outside the UI.
	got, err := adm.Certificate(ctx, "pki", serial)
	if err != nil || !got.Revoked || got.RevocationReason != "key-compromise" {
		t.Fatalf("over the API: %+v %v", got, err)
	}
	want, ok := new(big.Int).SetString(serial, 16)
	if !ok {
		t.Fatalf("serial %q", serial)
	}
	var listed bool
	for _, e := range parseCRL(t, h, "services").RevokedCertificateEntries {
		if e.SerialNumber.Cmp(want) == 0 {
			listed = e.ReasonCode == 1
		}
	}
	if !listed {
		t.Fatalf("serial %s not on the services CRL with reason keyCompromise", serial)
	}
}
