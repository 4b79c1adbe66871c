package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/metacrypt/internal/opensshtest"
)

// ctlBinary is metacryptctl, built once for the package's tests.
var ctlBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(env.dir, "metacryptctl")
	out, err := exec.Command("go", "build", "-o", bin, "git.metacircular.net/metacircular/metacrypt/cmd/metacryptctl").CombinedOutput()
	if err != nil {
		return "", &buildError{err: err, out: string(out)}
	}
	return bin, nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build metacryptctl: " + e.err.Error() + "\n" + e.out }

// ctl runs the built metacryptctl against one harness.
type ctl struct {
	t   *testing.T
	h   *harness
	bin string
	dir string
}

func newCtl(t *testing.T, h *harness) *ctl {
	t.Helper()
	bin, err := ctlBinary()
	if err != nil {
		t.Fatal(err)
	}
	return &ctl{t: t, h: h, bin: bin, dir: t.TempDir()}
}

// run runs metacryptctl as caller with stdin, returning standard output
// and standard error.
func (c *ctl) run(caller, stdin string, args ...string) (string, string, error) {
	c.t.Helper()
	cmd := exec.CommandContext(c.t.Context(), c.bin, args...)
	cmd.Env = append(os.Environ(), "METACIRCULAR_METACRYPT="+c.h.grpc, "METACIRCULAR_CA="+env.ca.CertPath(),
		"METACRYPTCTL_TOKEN="+env.tokens[caller], "XDG_CONFIG_HOME="+c.dir, "HOME="+c.dir)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// must runs metacryptctl and fails the test on a non-zero exit.
func (c *ctl) must(caller, stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(caller, stdin, args...)
	if err != nil {
		c.t.Fatalf("metacryptctl %s as %s: %v\n%s%s", strings.Join(args, " "), caller, err, out, errOut)
	}
	return out
}

// fails runs metacryptctl expecting a non-zero exit with one line on
// standard error mentioning each of want.
func (c *ctl) fails(caller, stdin string, args []string, want ...string) {
	c.t.Helper()
	out, errOut, err := c.run(caller, stdin, args...)
	if err == nil {
		c.t.Fatalf("metacryptctl %s as %s succeeded:\n%s", strings.Join(args, " "), caller, out)
	}
	if lines := strings.Count(strings.TrimSpace(errOut), "\n"); lines != 0 || !strings.HasPrefix(errOut, "metacryptctl: ") {
		c.t.Errorf("metacryptctl %s: want one error line, got %q", strings.Join(args, " "), errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			c.t.Errorf("metacryptctl %s: error %q lacks %q", strings.Join(args, " "), errOut, w)
		}
	}
}

// file writes content into the ctl's directory and returns the path.
func (c *ctl) file(name, content string) string {
	c.t.Helper()
	return write(c.t, c.dir, name, content)
}

// TestMetacryptctlTransit is the transit round trip through the CLI, as
// an operator and an application would run it: a key, encrypt from
// standard input, rotate, decrypt the v1 ciphertext, rewrap it to v2,
// raise min_decryption_version (v1 refused, v2 decrypts), batches from a
// JSON file, data keys, signatures and HMACs; a user allowed only to
// encrypt cannot decrypt.
func TestMetacryptctlTransit(t *testing.T) {
	h := initialized(t, nil)
	c := newCtl(t, h)
	c.must(admin, "", "mounts", "create", "transit", "--type", "transit")
	c.must(admin, "", "policy", "rules", "add", "--account", alice, "--mounts", "transit", "--operations", "encrypt", "--resources", "key/orders")
	c.must(admin, "", "transit", "keys", "create", "orders")
	const secret = "attack at dawn\x00\xff binary too"
	ct1 := strings.TrimSpace(c.must(alice, secret, "transit", "encrypt", "orders", "--associated-data", "order-42"))
	if !strings.HasPrefix(ct1, "metacrypt:v1:") {
		t.Fatalf("encrypt: %q", ct1)
	}
	c.fails(alice, ct1, []string{"transit", "decrypt", "orders", "--associated-data", "order-42"}, "permission denied")
	c.must(admin, "", "transit", "keys", "rotate", "orders")
	if got := c.must(admin, ct1+"\n", "transit", "decrypt", "orders", "--associated-data", "order-42"); got != secret {
		t.Fatalf("decrypt v1 after rotation: %q", got)
	}
	c.fails(admin, ct1, []string{"transit", "decrypt", "orders"}, "ciphertext")
	ct2 := strings.TrimSpace(c.must(admin, "", "transit", "rewrap", "orders", ct1, "--associated-data", "order-42"))
	if !strings.HasPrefix(ct2, "metacrypt:v2:") {
		t.Fatalf("rewrap: %q", ct2)
	}
	c.must(admin, "", "transit", "keys", "config", "orders", "--min-decryption-version", "2")
	c.fails(admin, "", []string{"transit", "decrypt", "orders", ct1, "--associated-data", "order-42"}, "min_decryption_version")
	plainFile := filepath.Join(c.dir, "plain.out")
	c.must(admin, "", "transit", "decrypt", "orders", "--in", c.file("ct2", ct2+"\n"), "--associated-data", "order-42", "--out", plainFile)
	if b, err := os.ReadFile(plainFile); err != nil || string(b) != secret {
		t.Fatalf("decrypt v2 to a file: %q %v", b, err)
	}
	var key struct {
		LatestVersion        int `json:"latest_version"`
		MinDecryptionVersion int `json:"min_decryption_version"`
	}
	if err := json.Unmarshal([]byte(c.must(admin, "", "transit", "keys", "show", "orders", "--json")), &key); err != nil || key.LatestVersion != 2 || key.MinDecryptionVersion != 2 {
		t.Fatalf("keys show: %+v %v", key, err)
	}
	if out := c.must(admin, "", "transit", "keys", "list"); !strings.Contains(out, "orders") {
		t.Fatalf("keys list:\n%s", out)
	}

	// Batches from a JSON file.
	batch := c.file("items.json", `[{"plaintext":"`+b64("one")+`"},{"plaintext":"`+b64("two")+`","associated_data":"`+b64("x")+`"}]`)
	var enc []struct {
		Ciphertext string `json:"ciphertext"`
	}
	if err := json.Unmarshal([]byte(c.must(admin, "", "transit", "encrypt", "orders", "--batch", batch, "--json")), &enc); err != nil || len(enc) != 2 {
		t.Fatalf("encrypt --batch: %+v %v", enc, err)
	}
	cts := c.file("cts.json", `[{"ciphertext":"`+enc[0].Ciphertext+`"},{"ciphertext":"`+enc[1].Ciphertext+`"}]`)
	out, _, err := c.run(admin, "", "transit", "decrypt", "orders", "--batch", cts, "--json")
	var dec []struct {
		Plaintext []byte `json:"plaintext"`
		Error     string `json:"error"`
		Field     string `json:"field"`
	}
	if jerr := json.Unmarshal([]byte(out), &dec); err == nil || jerr != nil || len(dec) != 2 || string(dec[0].Plaintext) != "one" || dec[1].Field != "items[1].ciphertext" {
		t.Fatalf("decrypt --batch with a missing associated data: %v %+v %v\n%s", err, dec, jerr, out)
	}

	// Data keys, signatures and HMACs.
	var dk struct {
		Ciphertext string `json:"ciphertext"`
		Plaintext  []byte `json:"plaintext"`
	}
	if err := json.Unmarshal([]byte(c.must(admin, "", "transit", "datakey", "orders", "--plaintext", "--json")), &dk); err != nil || len(dk.Plaintext) != 32 {
		t.Fatalf("datakey: %+v %v", dk, err)
	}
	if got := c.must(admin, "", "transit", "decrypt", "orders", dk.Ciphertext); got != string(dk.Plaintext) {
		t.Fatal("the wrapped data key does not unwrap to the plaintext one")
	}
	c.must(admin, "", "transit", "keys", "create", "release", "--type", "ed25519")
	release := c.file("release.tar", "release bytes")
	sig := strings.TrimSpace(c.must(admin, "", "transit", "sign", "release", "--in", release))
	c.must(admin, "", "transit", "verify", "release", "--in", release, "--signature", sig)
	c.fails(admin, "tampered", []string{"transit", "verify", "release", "--signature", sig}, "does not verify")
	mac := strings.TrimSpace(c.must(admin, "user-42", "transit", "hmac", "orders"))
	c.must(admin, "user-42", "transit", "verify", "orders", "--hmac", mac)
	c.fails(admin, "user-43", []string{"transit", "verify", "orders", "--hmac", mac}, "does not verify")
	c.fails(admin, "", []string{"transit", "keys", "delete", "release"}, "deletion_allowed")
	c.must(admin, "", "transit", "keys", "config", "release", "--deletion-allowed")
	c.must(admin, "", "transit", "keys", "delete", "release")
}

// TestMetacryptctlU2U: alice sends bob a message through the CLI, bob
// opens it and is told it is from alice, carol cannot open it.
func TestMetacryptctlU2U(t *testing.T) {
	users(t, bob, carol)
	h := initialized(t, []string{"u2u"})
	c := newCtl(t, h)
	c.must(admin, "", "policy", "rules", "add", "--role", "user", "--mounts", "u2u", "--operations", "manage,read,send,open", "--resources", "user/*,users")
	c.must(bob, "", "u2u", "keys", "create")
	const note = "the door code is 4711\n"
	msg := c.must(alice, note, "u2u", "send", "--to", bob)
	if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(msg)); err != nil || strings.Contains(msg, "4711") {
		t.Fatalf("send: %q %v", msg, err)
	}
	msgFile := c.file("msg.txt", msg)
	out, errOut, err := c.run(bob, "", "u2u", "open", "--in", msgFile)
	if err != nil || out != note || !strings.Contains(errOut, "from alice") {
		t.Fatalf("bob opens: %v %q %q", err, out, errOut)
	}
	c.fails(carol, msg, []string{"u2u", "open"}, "bob")
	var keys []struct {
		Username string `json:"username"`
	}
	if err := json.Unmarshal([]byte(c.must(carol, "", "u2u", "keys", "list", "--json")), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("keys list: %+v %v", keys, err)
	}
	if out := c.must(alice, "", "u2u", "keys", "rotate"); !strings.Contains(out, "2 (latest)") {
		t.Fatalf("rotate:\n%s", out)
	}
	if out, _, err := c.run(bob, "", "u2u", "open", "--in", msgFile); err != nil || out != note {
		t.Fatalf("open after the sender rotated: %v %q", err, out)
	}
}

// TestOpenSSHThroughAPI is the SSH CA end to end with real OpenSSH and
// curl, as an operator sets it up: metacryptctl makes the CA, the
// profiles and the policy; the host key gets a host certificate
// (metacryptctl ssh sign --host); sshd on 127.0.0.1 trusts the CA key and
// reads the KRL, both fetched from the public endpoints; alice
// signs her own key with metacryptctl (and is refused another's name),
// ssh logs in checking the host through @cert-authority; she revokes the
// certificate with metacryptctl, the KRL is fetched again by the shipped
// deploy/examples/metacrypt-krl-fetch.sh (its ETag check finds nothing new
// before the revocation and the new KRL after), and the same login is
// refused, as ssh-keygen -Q agrees. Sealed, the KRL still answers.
func TestOpenSSHThroughAPI(t *testing.T) {
	tools := opensshtest.Require(t)
	h := initialized(t, nil)
	c := newCtl(t, h)
	dir := t.TempDir()
	osUser, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}

	c.must(admin, "", "mounts", "create", "ssh", "--type", "ssh")
	c.must(admin, "", "ssh", "ca", "generate")
	c.must(admin, "", "ssh", "profiles", "create", "users", "--cert-type", "user", "--allowed-principals", "{{username}}",
		"--default-principals", "{{username}}", "--max-ttl", "8h", "--default-extensions", "permit-pty")
	c.must(admin, "", "ssh", "profiles", "create", "hosts", "--cert-type", "host", "--allowed-principals", "*.test")
	c.must(admin, "", "policy", "rules", "add", "--account", alice, "--mounts", "ssh", "--operations", "sign,revoke", "--resources", "profile/users")
	if out := c.must(admin, "", "ssh", "profiles", "list"); !strings.Contains(out, "{{username}}") || !strings.Contains(out, "hosts") {
		t.Fatalf("profiles list:\n%s", out)
	}

	// The host: its key and a host certificate for sshd.test.
	hostPriv, hostPub := sshKey(t)
	hostKey := opensshtest.WriteKey(t, dir, "host_key", hostPriv)
	c.fails(admin, hostPub, []string{"ssh", "sign", "--profile", "hosts", "--public-key", "-", "--principals", "sshd.test"}, "host certificates")
	c.must(admin, hostPub, "ssh", "sign", "--profile", "hosts", "--host", "--public-key", "-", "--principals", "sshd.test", "--out", hostKey+"-cert.pub")

	// What a host fetches without a token: the CA key with curl, and the
	// KRL with the shipped fetch script (curl with the last ETag, then
	// ssh-keygen's check), as the runbook's timer runs it.
	base := h.rest + "/v1/ssh/ssh/"
	caFile := curlGet(t, dir, "user_ca.pub", base+"ca")
	script, err := filepath.Abs("../../deploy/examples/metacrypt-krl-fetch.sh")
	if err != nil {
		t.Fatal(err)
	}
	krlFile := filepath.Join(dir, "revoked.krl")
	fetchKRL := func() string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), script)
		cmd.Env = append(os.Environ(), "METACRYPT_KRL_URL="+base+"krl", "METACRYPT_CA_CERT="+env.ca.CertPath(),
			"KRL_FILE="+krlFile, "KRL_ETAG_FILE="+filepath.Join(dir, "krl-state", "etag"))
		out, err := cmd.CombinedOutput()
		switch {
		case err != nil:
			t.Fatalf("metacrypt-krl-fetch: %v\n%s", err, out)
		case strings.Contains(string(out), "is current"):
			return "unchanged"
		case strings.Contains(string(out), "updated"):
			return "updated"
		}
		t.Fatalf("metacrypt-krl-fetch said %q", out)
		return ""
	}
	testtool.Require(t, "curl")
	if got := fetchKRL(); got != "updated" {
		t.Fatalf("first KRL fetch: %s", got)
	}
	caKey, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if shown := c.must(admin, "", "ssh", "ca", "show"); shown != string(caKey) {
		t.Fatalf("ssh ca show %q differs from the public endpoint's %q", shown, caKey)
	}
	knownHosts := opensshtest.WriteFile(t, filepath.Join(dir, "known_hosts"), "@cert-authority *.test "+string(caKey))
	principals := opensshtest.WriteFile(t, filepath.Join(dir, "principals"), "alice\n")
	srv := opensshtest.StartSSHD(t, tools, dir, []string{
		"HostKey " + hostKey, "HostCertificate " + hostKey + "-cert.pub",
		"TrustedUserCAKeys " + caFile, "RevokedKeys " + krlFile, "AuthorizedPrincipalsFile " + principals,
	})

	// alice's key and certificate, signed through the CLI.
	userPriv, userPub := sshKey(t)
	key := opensshtest.WriteKey(t, dir, "id_ed25519", userPriv)
	pubFile := opensshtest.WriteFile(t, key+".pub", userPub)
	c.fails(alice, "", []string{"ssh", "sign", "--profile", "users", "--public-key", pubFile, "--principals", bob}, "principals[0]", "not allowed")
	var signed struct {
		Certificate string `json:"certificate"`
		Record      struct {
			Serial uint64 `json:"serial"`
		} `json:"record"`
	}
	certFile := key + "-cert.pub"
	if err := json.Unmarshal([]byte(c.must(alice, "", "ssh", "sign", "--profile", "users", "--public-key", pubFile, "--ttl", "1h", "--out", certFile, "--json")), &signed); err != nil || signed.Record.Serial == 0 {
		t.Fatalf("ssh sign: %+v %v", signed, err)
	}
	login := func() (string, error) {
		t.Helper()
		return srv.Login(t, dir, osUser.Username, key, certFile, knownHosts, "echo", "hello")
	}
	if out, err := login(); err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("login with alice's certificate: %v\n%s", err, out)
	}
	serial := strconv.FormatUint(signed.Record.Serial, 10)
	if !strings.Contains(srv.Logs.String(), "ID alice (serial "+serial+")") {
		t.Errorf("sshd did not log alice's key ID and serial %s", serial)
	}
	if out := c.must(admin, "", "ssh", "certs", "list", "--principal", alice); !strings.Contains(out, serial) || !strings.Contains(out, "valid") {
		t.Fatalf("certs list:\n%s", out)
	}
	if got := fetchKRL(); got != "unchanged" {
		t.Fatalf("KRL fetch before any revocation: %s", got)
	}

	// Revocation through the CLI; the host fetches the KRL again.
	var rev struct {
		KRLVersion uint64   `json:"krl_version"`
		Serials    []uint64 `json:"serials"`
	}
	if err := json.Unmarshal([]byte(c.must(alice, "", "ssh", "revoke", "--serial", serial, "--json")), &rev); err != nil ||
		rev.KRLVersion != 2 || len(rev.Serials) != 1 || rev.Serials[0] != signed.Record.Serial {
		t.Fatalf("revoke: %+v %v", rev, err)
	}
	if got := fetchKRL(); got != "updated" {
		t.Fatalf("KRL fetch after the revocation: %s", got)
	}
	out, err := login()
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("login with the revoked certificate: %v\n%s", err, out)
	}
	if !opensshtest.KeygenQuery(t, tools, krlFile, certFile) {
		t.Fatal("ssh-keygen -Q: the revoked certificate is ok")
	}
	ctlKRL := filepath.Join(dir, "ctl.krl")
	c.must(admin, "", "ssh", "krl", "--out", ctlKRL)
	if a, b := readFile(t, ctlKRL), readFile(t, krlFile); !bytes.Equal(a, b) {
		t.Fatal("metacryptctl ssh krl and the public endpoint differ")
	}
	if out := c.must(admin, "", "ssh", "certs", "show", serial); !strings.Contains(out, "revoked") {
		t.Fatalf("certs show:\n%s", out)
	}

	// Sealed: the host can still fetch (and gets the same KRL).
	c.must(admin, "", "seal")
	if got := fetchKRL(); got != "unchanged" {
		t.Fatalf("KRL fetch while sealed: %s", got)
	}
	if err := os.Remove(krlFile); err != nil {
		t.Fatal(err)
	}
	if got := fetchKRL(); got != "updated" || !opensshtest.KeygenQuery(t, tools, krlFile, certFile) {
		t.Fatalf("KRL fetched again while sealed after the file was lost: %s", got)
	}
	c.fails(alice, "", []string{"ssh", "sign", "--profile", "users", "--public-key", pubFile}, "sealed")
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // the test's own file
	if err != nil {
		t.Fatal(err)
	}
	return b
}
