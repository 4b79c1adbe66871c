package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/opencontainers/go-digest"

	"git.metacircular.net/metacircular/mcdsl/testtool"
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

// pushIndex pushes a linux/amd64 + linux/arm64 index to repo:tag, and a
// signature-like referrer of the amd64 image; it returns the amd64 image.
func pushIndex(t *testing.T, c *regClient, repo, tag string) image {
	t.Helper()
	var entries string
	var amd image
	for i, arch := range []string{"amd64", "arm64"} {
		img := newImage("browser-" + arch)
		c.pushImage(t, repo, img.digest.String(), img)
		if i > 0 {
			entries += ","
		}
		entries += fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":%q}}`,
			img.digest, len(img.manifest), arch)
		if arch == "amd64" {
			amd = img
		}
	}
	idx := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + entries + `]}`)
	if r := c.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, http.Header{"Content-Type": {"application/vnd.oci.image.index.v1+json"}}, idx); r.status != http.StatusCreated {
		t.Fatalf("index: %d %s", r.status, r.body)
	}
	empty := c.pushBlob(t, repo, []byte("{}"))
	sig := c.pushBlob(t, repo, []byte("signature"))
	ref := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.signature","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/vnd.example.signature","digest":%q,"size":9}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}}`,
		empty, sig, amd.digest, len(amd.manifest))
	if r := c.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+digest.FromString(ref).String(), http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, []byte(ref)); r.status != http.StatusCreated ||
		r.header.Get("OCI-Subject") != amd.digest.String() {
		t.Fatalf("referrer: %d %s", r.status, r.body)
	}
	return amd
}

// TestBrowserUI signs in through MCIAS SSO in headless Chromium (TLS
// verified against the test CA), browses repositories, an index's
// platforms, an image's layers and referrers, and adds and deletes an
// access rule through the CSRF-protected form.
func TestBrowserUI(t *testing.T) {
	chromium := testtool.Require(t, "/usr/bin/chromium")
	home := trustingHome(t)
	h := start(t, options{web: env.webLn, extra: fmt.Sprintf("\n[web]\nenabled = true\nsso_client_id = \"mcr\"\nsso_redirect_uri = \"https://%s/sso/callback\"\n", env.webLn.Addr())})
	amd := pushIndex(t, h.client(alice), "team/multi", "v1")

	var browserLog bytes.Buffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Flag("headless", true), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.Env("HOME="+home),
		chromedp.CombinedOutput(&browserLog),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, browserLog.String())
	}
	ctx, cancel := context.WithTimeout(bctx, 45*time.Second)
	defer cancel()
	fail := func(step string, err error) {
		t.Helper()
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		body, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %v\npage %s:\n%s", step, err, loc, tail(body, 3000))
	}
	// Sign in on MCR with no MCIAS session yet: MCR → MCIAS authorize →
	// MCIAS's login form → (the form's redirects) authorize → MCR's
	// callback with a code. Browsers apply CSP form-action to the
	// redirects that follow a form submission, so MCIAS's login page must
	// allow MCR's origin (a regression: the browser stayed on the login
	// page).
	if err := chromedp.Do(ctx, chromedp.Navigate(h.base+"/"), chromedp.Click(chromedp.CSS(`#signin`))); err != nil {
		fail("sign-in page", err)
	}
	if err := waitTrue(ctx, `location.pathname === "/login" && !!document.querySelector('input[name="username"]')`); err != nil {
		fail("MCIAS login page", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), admin),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), adminPassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
	); err != nil {
		fail("MCIAS login", err)
	}
	if err := waitTrue(ctx, `location.host === "`+h.host+`" && !!document.getElementById("repos") && document.getElementById("repos").innerText.includes("team/multi") && document.getElementById("whoami").innerText === "admin"`); err != nil {
		fail("repository list after SSO", err)
	}
	steps := []struct{ url, cond string }{
		{"/repos/team/multi", `document.getElementById("tags").innerText.includes("v1")`},
		{"/manifest?repo=team/multi&ref=v1", `document.getElementById("platforms").innerText.includes("linux/amd64") && document.getElementById("platforms").innerText.includes("linux/arm64")`},
		{"/manifest?repo=team/multi&ref=" + amd.digest.String(), `document.getElementById("layers").innerText.includes("KiB") && document.getElementById("referrers").innerText.includes("application/vnd.example.signature")`},
		{"/policies", `document.getElementById("policies").innerText.includes("conformance/*")`},
	}
	for _, s := range steps {
		if err := chromedp.Do(ctx, chromedp.Navigate(h.base+s.url)); err != nil {
			fail(s.url, err)
		}
		if err := waitTrue(ctx, s.cond); err != nil {
			fail(s.url, err)
		}
	}
	// Add a rule through the form (CSRF token in the form).
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#add-policy input[name="repository"]`), "browser/*"),
		chromedp.SendKeys(chromedp.CSS(`#add-policy input[name="roles"]`), "guest"),
		chromedp.SendKeys(chromedp.CSS(`#add-policy input[name="description"]`), "added in the browser"),
		chromedp.Submit(chromedp.CSS(`#add-policy`)),
	); err != nil {
		fail("add rule", err)
	}
	if err := waitTrue(ctx, `document.getElementById("policies") && document.getElementById("policies").innerText.includes("added in the browser")`); err != nil {
		fail("rule listed", err)
	}
	// The rule works: gina (guest) may now pull browser/*.
	tok := h.token(t, gina, "repository:browser/x:pull")
	if tok == "" {
		t.Fatal("no token")
	}
	var listed struct {
		Policies []struct{ Description string }
	}
	if code := h.rest(t, admin, http.MethodGet, "/v1/policies", nil, &listed); code != http.StatusOK || len(listed.Policies) != 6 {
		t.Fatalf("policies over REST: %d %+v", code, listed)
	}
	// A POST without the CSRF token is refused.
	req, _ := http.NewRequest(http.MethodPost, h.base+"/policies", nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form post without CSRF token: %d", resp.StatusCode)
	}
}
