package server_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/metacrypt/client"
)

// TestBrowserEngines drives the SSH CA, transit and u2u pages in
// headless Chromium as alice, signed in through MCIAS SSO from a fresh
// browser: from the start page's mount links, she generates the SSH CA,
// signs her pasted public key (the certificate parsed and checked against
// the CA the API reports), creates a transit key, encrypts a text and
// decrypts the ciphertext the page showed back to the same text (and the
// API decrypts it too), creates her u2u key, seals a message to herself
// and opens it, seeing herself as the sender. Every step clicks the
// page's own buttons and waits for what the next page shows.
func TestBrowserEngines(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	ad := h.client(t, admin)
	if _, err := ad.Init(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"ssh", "transit", "u2u"} {
		if _, err := ad.CreateMount(ctx, m, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []client.Rule{
		rule([]string{alice}, "ssh", []string{"manage"}, "ca"),
		rule([]string{alice}, "ssh", []string{"sign"}, "profile/users"),
		rule([]string{alice}, "transit", []string{"manage", "read", "encrypt", "decrypt"}, "key/*", "keys"),
		rule([]string{alice}, "u2u", []string{"manage", "read", "send", "open"}, "user/*", "users"),
	} {
		if _, err := ad.CreateRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ad.CreateSSHProfile(ctx, "ssh", client.SSHProfileRequest{Name: "users", CertType: "user",
		AllowedPrincipals: []string{"{{username}}"}, DefaultPrincipals: []string{"{{username}}"}, DefaultExtensions: []string{"permit-pty"}}); err != nil {
		t.Fatal(err)
	}
	// Restart on the listener MCIAS knows the redirect URI of, and unseal.
	h.httpLn, h.extra = ssoListener(t), webTOML(env.webLn.Addr().String())
	h.restart(t)
	ad = h.client(t, admin)
	if _, err := ad.Unseal(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}

	b := openBrowser(t, 90*time.Second)
	step, read := b.step, b.text

	step("sign-in page", `location.pathname === "/login" && !!document.querySelector('input[name="username"]')`,
		chromedp.Navigate(h.rest+"/ssh/ssh"), chromedp.Click(chromedp.CSS(`#signin`)))
	step("MCIAS login", `location.pathname === "/" && `+text("whoami")+` === "alice" && !!document.querySelector('#mounts a[href="/ssh/ssh"]')`,
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), alice),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), alice+"-password-123"),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))

	// SSH: the CA, then a certificate for a pasted key.
	step("SSH CA page", `location.pathname === "/ssh/ssh" && !!document.getElementById("generate-ca")`,
		chromedp.Click(chromedp.CSS(`#mounts a[href="/ssh/ssh"]`)))
	step("generate the CA", text("flash")+`.startsWith("SSH CA key generated") && `+text("ca-key")+`.startsWith("ssh-ed25519 ") && `+
		text("sshd-config")+`.includes("TrustedUserCAKeys")`,
		chromedp.SetValue(chromedp.CSS(`#generate-ca select[name="key_type"]`), "ed25519"),
		chromedp.Click(chromedp.CSS(`#generate-ca button[type="submit"]`)))
	ca, err := ad.SSHCA(ctx, "ssh")
	if err != nil || read("CA key", "ca-key") != strings.TrimSpace(ca.PublicKey) {
		t.Fatalf("the CA the page shows is not the API's: %+v %v", ca, err)
	}
	_, pub := sshKey(t)
	step("sign page", `location.pathname === "/ssh/ssh/sign" && !!document.getElementById("sign")`,
		chromedp.Click(chromedp.CSS(`#nav a[href="/ssh/ssh/sign"]`)))
	step("sign", text("certificate")+`.includes("-cert-v01@openssh.com ") && `+text("principals")+` === "alice"`,
		chromedp.SendKeys(chromedp.CSS(`#sign input[name="profile"]`), "users"),
		chromedp.SetValue(chromedp.CSS(`#sign textarea[name="public_key"]`), pub),
		chromedp.SendKeys(chromedp.CSS(`#sign input[name="ttl"]`), "1h"),
		chromedp.Click(chromedp.CSS(`#sign button[type="submit"]`)))
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(read("certificate", "certificate")))
	if err != nil {
		t.Fatalf("the page's certificate: %v", err)
	}
	caKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(ca.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	userKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := parsed.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.UserCert || !slices.Equal(cert.ValidPrincipals, []string{alice}) ||
		!bytes.Equal(cert.SignatureKey.Marshal(), caKey.Marshal()) || !bytes.Equal(cert.Key.Marshal(), userKey.Marshal()) {
		t.Fatalf("the page's certificate: %+v", parsed)
	}
	if err := (&ssh.CertChecker{}).CheckCert(alice, cert); err != nil {
		t.Fatalf("the page's certificate for alice: %v", err)
	}

	// Transit: a key, a text encrypted and decrypted back.
	const secret = "the eagle lands at 0600"
	step("transit page", `location.pathname === "/transit/transit" && !!document.getElementById("create-key")`,
		chromedp.Navigate(h.rest+"/"), chromedp.Click(chromedp.CSS(`#mounts a[href="/transit/transit"]`)))
	step("create a key", `location.pathname === "/transit/transit/keys/browser" && `+text("flash")+` === "Key browser created." && !!document.getElementById("encrypt")`,
		chromedp.SendKeys(chromedp.CSS(`#create-key input[name="name"]`), "browser"),
		chromedp.Click(chromedp.CSS(`#create-key button[type="submit"]`)))
	step("encrypt", text("result-ciphertext")+`.startsWith("metacrypt:v1:")`,
		chromedp.SendKeys(chromedp.CSS(`#encrypt textarea[name="plaintext"]`), secret),
		chromedp.Click(chromedp.CSS(`#encrypt button[type="submit"]`)))
	ct := read("ciphertext", "result-ciphertext")
	if pt, err := ad.Decrypt(ctx, "transit", client.DecryptRequest{Key: "browser", Ciphertext: ct}); err != nil || string(pt.Plaintext) != secret {
		t.Fatalf("the page's ciphertext over the API: %q %v", pt.Plaintext, err)
	}
	step("decrypt", text("result-done")+`.startsWith("Decrypted") && `+text("result-plaintext")+` === "`+secret+`"`,
		chromedp.SendKeys(chromedp.CSS(`#decrypt textarea[name="ciphertext"]`), ct),
		chromedp.Click(chromedp.CSS(`#decrypt button[type="submit"]`)))

	// u2u: a key pair, a message to herself, opened.
	const note = "note to self: rotate the keys on Friday"
	step("u2u page", `location.pathname === "/u2u/u2u" && !!document.getElementById("create-key")`,
		chromedp.Navigate(h.rest+"/"), chromedp.Click(chromedp.CSS(`#mounts a[href="/u2u/u2u"]`)))
	step("create my key", text("flash")+` === "Your key pair is created: version 1." && `+text("my-version")+` === "1"`,
		chromedp.Click(chromedp.CSS(`#create-key button[type="submit"]`)))
	step("send", text("sent-to")+` === "alice" && `+text("sealed-message")+`.length > 100`,
		chromedp.SendKeys(chromedp.CSS(`#send input[name="recipient"]`), alice),
		chromedp.SendKeys(chromedp.CSS(`#send textarea[name="message"]`), note),
		chromedp.Click(chromedp.CSS(`#send button[type="submit"]`)))
	sealed := read("sealed message", "sealed-message")
	if strings.Contains(sealed, note) {
		t.Fatal("the sealed message holds the plaintext")
	}
	step("open", text("opened-sender")+` === "alice" && `+text("opened-plaintext")+` === "`+note+`"`,
		chromedp.SetValue(chromedp.CSS(`#open textarea[name="message"]`), sealed),
		chromedp.Click(chromedp.CSS(`#open button[type="submit"]`)))
}
