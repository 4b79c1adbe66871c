package e2e

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // RFC 6238 TOTP is HMAC-SHA-1
	"crypto/tls"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcias/client"
)

const (
	adminPassword = "e2e-admin-password"
	alicePassword = "alice-password-123"
	bobPassword   = "bob-password-12345"
)

// buildBinaries builds the named commands into a temporary directory.
func buildBinaries(t *testing.T, cmds ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"build", "-o", dir + string(os.PathSeparator)}, cmds...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// process is a started binary whose output is kept for failure reports.
type process struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
}

// startProcess runs bin with args until the test ends (SIGTERM, then kill).
func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHealthy polls url until it answers 200.
func waitHealthy(t *testing.T, c *http.Client, p *process, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("process exited before %s was healthy:\n%s", url, p.out.String())
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not healthy after 30s", url)
}

// totpCode computes the RFC 6238 code (SHA-1, 6 digits, 30 s) for a
// base32 secret, as an authenticator app would.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		t.Fatal(err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30)) //nolint:gosec // the time is after 1970
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

var (
	csrfRe    = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	outcomeRe = regexp.MustCompile(`data-outcome="([a-z_]+)"`)
)

// mcatForm drives MCAT's page like a browser: a GET for the CSRF token,
// then the form post; it returns the outcome shown and the page.
func mcatForm(t *testing.T, c *http.Client, base string, fields url.Values) (string, string) {
	t.Helper()
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := csrfRe.FindSubmatch(page)
	if m == nil {
		t.Fatalf("MCAT page has no CSRF token:\n%s", page)
	}
	fields.Set("csrf_token", string(m[1]))
	resp, err = c.PostForm(base+"/", fields)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("MCAT post = %d\n%s", resp.StatusCode, body)
	}
	o := outcomeRe.FindSubmatch(body)
	if o == nil {
		t.Fatalf("MCAT shows no outcome:\n%s", body)
	}
	return string(o[1]), string(body)
}

// TestMCATAgainstMCIAS runs the mcias and mcat binaries on loopback with
// seed-CA certificates and checks every outcome MCAT reports against the
// real MCIAS: allowed, denied by policy (by service name and by tag), bad
// credentials, TOTP required, throttled and MCIAS unavailable.
func TestMCATAgainstMCIAS(t *testing.T) {
	bin := buildBinaries(t, "git.metacircular.net/metacircular/mcias/cmd/mcias", "git.metacircular.net/metacircular/mcat/cmd/mcat")
	dir := t.TempDir()
	ca, err := seedpki.Init(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	loopback := seedpki.IssueRequest{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	mciasCert, err := ca.Issue("mcias", loopback)
	if err != nil {
		t.Fatal(err)
	}
	mcatCert, err := ca.Issue("mcat", loopback)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}}
	t.Cleanup(tr.CloseIdleConnections)
	plain := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	ep, mcias := startMCIAS(t, bin, dir, mciasCert, plain)
	mciasURL := ep.url

	// Accounts and policy, through the public Go client.
	ctx := t.Context()
	admin, err := client.New(ep.grpc, ca.CertPath(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Login(ctx, client.LoginRequest{Username: "admin", Password: adminPassword}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []client.CreateAccountRequest{
		{Username: "alice", AccountType: "human", Password: alicePassword, Roles: []string{"user"}},
		{Username: "bob", AccountType: "human", Password: bobPassword, Roles: []string{"user"}},
	} {
		if _, err := admin.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []client.Policy{
		{Priority: 10, Effect: "deny", Actions: []string{"auth:login"}, ServiceNames: []string{"mcat-denied"}, Description: "e2e: deny one service"},
		{Priority: 20, Effect: "deny", Actions: []string{"auth:login"}, RequiredTags: []string{"env:blocked"}, Description: "e2e: deny one tag"},
	} {
		if _, err := admin.CreatePolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	bob, err := client.New(ep.grpc, ca.CertPath(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Login(ctx, client.LoginRequest{Username: "bob", Password: bobPassword}); err != nil {
		t.Fatal(err)
	}
	enr, err := bob.EnrollTOTP(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	recovery, err := bob.ConfirmTOTP(ctx, "bob", totpCode(t, enr.Secret, time.Now()))
	if err != nil || len(recovery) == 0 {
		t.Fatalf("confirm TOTP: %v %v", recovery, err)
	}

	mcatAddr := freeAddr(t)
	mcatCfg := filepath.Join(dir, "mcat.toml")
	writeFile(t, mcatCfg, fmt.Sprintf(`[server]
listen_addr = %q
tls_cert = %q
tls_key = %q
[mcias]
server_url = %q
ca_cert = %q
service_name = "mcat"
`, mcatAddr, mcatCert.CertPath, mcatCert.KeyPath, mciasURL, ca.CertPath()))
	mcat := startProcess(t, "mcat", filepath.Join(bin, "mcat"), "--config", mcatCfg, "server")
	mcatURL := "https://" + mcatAddr
	waitHealthy(t, plain, mcat, mcatURL+"/v1/health")

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Transport: tr, Jar: jar, Timeout: 20 * time.Second}
	try := func(user, password, totp, service, tags string) (string, string) {
		return mcatForm(t, browser, mcatURL, url.Values{
			"username": {user}, "password": {password}, "totp_code": {totp}, "service_name": {service}, "tags": {tags},
		})
	}

	outcome, page := try("alice", alicePassword, "", "mcat-ok", "env:test")
	if outcome != "allowed" || !strings.Contains(page, "<dd>alice</dd>") || !strings.Contains(page, "<dd>user</dd>") || !strings.Contains(page, "<dd>human</dd>") {
		t.Fatalf("alice at mcat-ok: %s\n%s", outcome, page)
	}
	for _, c := range []struct{ name, user, password, totp, service, tags, want string }{
		{"denied service", "alice", alicePassword, "", "mcat-denied", "", "denied"},
		{"denied tag", "alice", alicePassword, "", "mcat-ok", "team:a, env:blocked", "denied"},
		{"wrong password", "alice", "not-the-password", "", "mcat-ok", "", "bad_credentials"},
		{"unknown user", "nobody", "not-the-password", "", "mcat-ok", "", "bad_credentials"},
		{"totp missing", "bob", bobPassword, "", "mcat-ok", "", "totp_required"},
		{"recovery code", "bob", bobPassword, recovery[0], "mcat-ok", "", "allowed"},
	} {
		if got, page := try(c.user, c.password, c.totp, c.service, c.tags); got != c.want {
			t.Fatalf("%s: outcome %q; want %q\n%s", c.name, got, c.want, page)
		}
	}
	// account_failures = 3: the fourth attempt within the window is refused
	// before the password is even checked.
	for i := range 3 {
		if got, _ := try("mallory", "guess-"+fmt.Sprint(i), "", "mcat-ok", ""); got != "bad_credentials" {
			t.Fatalf("guess %d: %q; want bad_credentials", i, got)
		}
	}
	if got, _ := try("mallory", "guess-4", "", "mcat-ok", ""); got != "throttled" {
		t.Fatalf("fourth guess: %q; want throttled", got)
	}

	// MCAT leaves no usable token behind: alice's one allowed login
	// through it issued a token (denials issue none), and MCAT revoked it.
	toks, err := admin.ListTokens(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 1 || toks[0].RevokedAt == nil {
		t.Fatalf("alice's tokens after MCAT tests: %+v; want one, revoked", toks)
	}

	mcias.stop()
	if got, page := try("alice", alicePassword, "", "mcat-ok", ""); got != "unavailable" || !strings.Contains(page, "MCIAS unavailable") {
		t.Fatalf("MCIAS stopped: outcome %q", got)
	}
	for _, secret := range []string{alicePassword, bobPassword, adminPassword, recovery[0]} {
		if strings.Contains(mcat.out.String(), secret) || strings.Contains(mcias.out.String(), secret) {
			t.Fatal("a password or recovery code reached a log")
		}
	}
}

// mciasEndpoints are where a test MCIAS answers.
type mciasEndpoints struct {
	// url is the REST base URL (https://host:port).
	url string
	// grpc is the gRPC address (host:port), where the Go client and the
	// CLIs talk.
	grpc string
}

// startMCIAS writes a config with fast Argon2 parameters and a throttle of
// three failures, runs "mcias init" with adminPassword and serves until the
// test ends; it returns the endpoints once healthy, and the process.
func startMCIAS(t *testing.T, bin, dir string, cert seedpki.Issued, plain *http.Client) (mciasEndpoints, *process) {
	t.Helper()
	mciasAddr, grpcAddr := freeAddr(t), freeAddr(t)
	mciasCfg := filepath.Join(dir, "mcias.toml")
	writeFile(t, mciasCfg, fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[argon2]
memory_kib = 8192
iterations = 1
parallelism = 1
[throttle]
account_failures = 3
ip_failures = 1000
`, mciasAddr, grpcAddr, cert.CertPath, cert.KeyPath, filepath.Join(dir, "mcias.db")))
	pwFile := filepath.Join(dir, "admin-password")
	writeFile(t, pwFile, adminPassword)
	if out, err := exec.Command(filepath.Join(bin, "mcias"), "--config", mciasCfg, "init", "--password-file", pwFile).CombinedOutput(); err != nil {
		t.Fatalf("mcias init: %v\n%s", err, out)
	}
	mcias := startProcess(t, "mcias", filepath.Join(bin, "mcias"), "--config", mciasCfg, "server")
	mciasURL := "https://" + mciasAddr
	waitHealthy(t, plain, mcias, mciasURL+"/v1/health")
	return mciasEndpoints{url: mciasURL, grpc: grpcAddr}, mcias
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
