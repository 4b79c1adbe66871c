// Package platformtest starts a whole local platform for MCP's end-to-end
// tests, the way the services' own tests and the local launcher start
// them: the binaries built with go build, configurations written to a
// temporary directory, a seed CA, MCIAS (with an admin and the mcp-agent
// system account's token from "mcias system-account"), Metacrypt
// ("metacrypt bootstrap", then unsealed), MCNS, mc-proxy and MCR, every
// server on 127.0.0.1. Podman runs with its own storage (graph root and
// run root under the test's directory, through CONTAINERS_STORAGE_CONF),
// so a test may remove every container and image of that storage — as the
// seed's incident did — without touching anyone else's.
package platformtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
	metacryptclient "git.metacircular.net/metacircular/metacrypt/client"
)

// Domain is the platform domain of the tests.
const Domain = "mcp.test"

// AdminPassword is the MCIAS admin's password.
const AdminPassword = "platformtest-admin-password"

// Binaries are the platform binaries the tests run.
var Binaries = map[string]string{
	"mcias":     "git.metacircular.net/metacircular/mcias/cmd/mcias",
	"metacrypt": "git.metacircular.net/metacircular/metacrypt/cmd/metacrypt",
	"mcns":      "git.metacircular.net/metacircular/mcns/cmd/mcns",
	"mc-proxy":  "git.metacircular.net/metacircular/mcproxy/cmd/mc-proxy",
	"mcr":       "git.metacircular.net/metacircular/mcr/cmd/mcr",
	"mcp-agent": "git.metacircular.net/metacircular/mcp/cmd/mcp-agent",
	"mcp":       "git.metacircular.net/metacircular/mcp/cmd/mcp",
	"mcat":      "git.metacircular.net/metacircular/mcat/cmd/mcat",
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// BinDir builds every binary once per test process (CGO_ENABLED=0, as
// released) and returns their directory. Cleanup removes it.
func BinDir() (string, error) {
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mcp-platformtest-bin-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", binDir + "/"}
		for _, pkg := range Binaries {
			args = append(args, pkg)
		}
		cmd := exec.Command("go", args...) //nolint:gosec // the platform's own packages
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	return binDir, buildErr
}

// Cleanup removes the built binaries (TestMain calls it).
func Cleanup() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// Platform is a running local platform.
type Platform struct {
	t   testing.TB
	Dir string
	Bin string
	CA  *seedpki.CA

	MCIASHTTPS, MCIASGRPC   string
	AdminToken              string
	AgentTokenFile          string
	MetacryptGRPC           string
	MCNSGRPC, MCNSDNS       string
	ProxySocket, ProxyHTTPS string
	ProxyMetrics            string
	MCRHost                 string
	StorageConf, CertDir    string
	procs                   []*Proc
	podmanCleanup           bool
}

// Proc is a running platform binary.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Logs *syncbuf.Buffer
	done chan struct{}
}

// Stop ends the process with SIGTERM (SIGKILL after 15 s).
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the process with SIGKILL, as a crash would.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// FreeAddr is a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// Start starts MCIAS, Metacrypt, MCNS, mc-proxy and MCR; everything stops
// (and the test storage's containers and images are removed) when the
// test ends.
func Start(t testing.TB) *Platform {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	p := &Platform{t: t, Dir: t.TempDir(), Bin: bin}
	t.Cleanup(p.stopAll)
	if p.CA, err = seedpki.Init(filepath.Join(p.Dir, "ca")); err != nil {
		t.Fatal(err)
	}
	p.podman()
	p.startMCIAS()
	p.startMetacrypt()
	p.startMCNS()
	p.startProxy()
	p.startMCR()
	return p
}

func (p *Platform) stopAll() {
	for i := len(p.procs) - 1; i >= 0; i-- {
		p.procs[i].Stop()
	}
	if p.t.Failed() {
		for _, pr := range p.procs {
			p.t.Logf("--- %s log (tail):\n%s", pr.Name, tail(pr.Logs.String(), 6000))
		}
	}
	if p.podmanCleanup {
		// Only this test's storage: its containers and images, then its
		// mounts are gone and the directory can be removed.
		for _, args := range [][]string{{"rm", "--all", "--force", "--time", "0"}, {"rmi", "--all", "--force"}} {
			cmd := exec.Command("podman", args...) //nolint:gosec // fixed podman arguments
			cmd.Env = p.PodmanEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				p.t.Logf("cleanup podman %s: %v\n%s", args[0], err, out)
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// podman writes the test's own containers storage configuration and a
// certificate directory trusting the seed CA (for MCR).
func (p *Platform) podman() {
	dir := filepath.Join(p.Dir, "podman")
	p.StorageConf = filepath.Join(dir, "storage.conf")
	p.write(p.StorageConf, fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "graph"), filepath.Join(dir, "run")))
	p.CertDir = filepath.Join(dir, "certs.d")
	ca, err := os.ReadFile(p.CA.CertPath())
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(filepath.Join(p.CertDir, "ca.crt"), string(ca))
	p.podmanCleanup = true
}

// PodmanEnv is the environment podman runs with in the tests: the test's
// storage and registry credentials file.
func (p *Platform) PodmanEnv() []string {
	return append(os.Environ(), "CONTAINERS_STORAGE_CONF="+p.StorageConf,
		"REGISTRY_AUTH_FILE="+filepath.Join(p.Dir, "podman", "auth.json"))
}

// Podman runs podman in the test's storage and returns its output.
func (p *Platform) Podman(args ...string) (string, error) {
	cmd := exec.Command("podman", args...) //nolint:gosec // the test's own podman calls
	cmd.Env = p.PodmanEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *Platform) write(path, content string) {
	p.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil { //nolint:gosec // under the test's directory
		p.t.Fatal(err)
	}
}

// Issue issues a loopback certificate from the seed CA.
func (p *Platform) Issue(name string, dnsNames ...string) seedpki.Issued {
	p.t.Helper()
	c, err := p.CA.Issue(name, seedpki.IssueRequest{DNSNames: dnsNames, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// Run runs a platform binary to completion.
func (p *Platform) Run(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(p.Bin, name), args...) //nolint:gosec // our own test binaries
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustRun is Run failing the test on error.
func (p *Platform) MustRun(name string, args ...string) string {
	p.t.Helper()
	out, err := p.Run(os.Environ(), name, args...)
	if err != nil {
		p.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// Spawn starts a platform binary in the background.
func (p *Platform) Spawn(name string, env []string, args ...string) *Proc {
	p.t.Helper()
	pr := &Proc{Name: name, Logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	pr.Cmd = exec.Command(filepath.Join(p.Bin, name), args...) //nolint:gosec // our own test binaries
	pr.Cmd.Env = env
	pr.Cmd.Stdout, pr.Cmd.Stderr = pr.Logs, pr.Logs
	pr.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := pr.Cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go func() { _ = pr.Cmd.Wait(); close(pr.done) }()
	p.procs = append(p.procs, pr)
	return pr
}

// WaitHTTPS waits for url to answer 200 (TLS verified against the CA).
func (p *Platform) WaitHTTPS(pr *Proc, url string) {
	p.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CA.Pool(), MinVersion: tls.VersionTLS13}}}
	defer c.CloseIdleConnections()
	p.wait(pr, url, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// WaitTCP waits for addr to accept connections.
func (p *Platform) WaitTCP(pr *Proc, addr string) {
	p.t.Helper()
	p.wait(pr, addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
}

func (p *Platform) wait(pr *Proc, what string, ok func() bool) {
	p.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if pr != nil && pr.Exited() {
			p.t.Fatalf("%s exited before %s answered:\n%s", pr.Name, what, tail(pr.Logs.String(), 4000))
		}
		if ok() {
			return
		}
	}
	p.t.Fatalf("%s did not answer within 60s", what)
}

func (p *Platform) startMCIAS() {
	dir := filepath.Join(p.Dir, "mcias")
	cert := p.Issue("mcias", "mcias.svc."+Domain)
	p.MCIASHTTPS, p.MCIASGRPC = FreeAddr(p.t), FreeAddr(p.t)
	cfg := filepath.Join(dir, "mcias.toml")
	p.write(cfg, fmt.Sprintf(`[server]
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
account_failures = 100
ip_failures = 1000
`, p.MCIASHTTPS, p.MCIASGRPC, cert.CertPath, cert.KeyPath, filepath.Join(dir, "mcias.db")))
	pw := filepath.Join(dir, "admin-password")
	p.write(pw, AdminPassword)
	p.MustRun("mcias", "--config", cfg, "init", "--password-file", pw)
	p.AgentTokenFile = filepath.Join(p.Dir, "mcp", "mcp-agent.token")
	if err := os.MkdirAll(filepath.Dir(p.AgentTokenFile), 0o700); err != nil {
		p.t.Fatal(err)
	}
	p.MustRun("mcias", "--config", cfg, "system-account", "mcp-agent", "--token-file", p.AgentTokenFile)
	pr := p.Spawn("mcias", os.Environ(), "--config", cfg, "server")
	p.WaitHTTPS(pr, "https://"+p.MCIASHTTPS+"/v1/health")
	c, err := mciasclient.New(p.MCIASGRPC, p.CA.CertPath(), "")
	if err != nil {
		p.t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	tok, err := c.Login(context.Background(), mciasclient.LoginRequest{Username: "admin", Password: AdminPassword})
	if err != nil {
		p.t.Fatal(err)
	}
	p.AdminToken = tok.Token
}

// CreateUser creates a human account with one role and returns its token.
func (p *Platform) CreateUser(name, role string) string {
	p.t.Helper()
	ctx := context.Background()
	c, err := mciasclient.New(p.MCIASGRPC, p.CA.CertPath(), p.AdminToken)
	if err != nil {
		p.t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	pw := name + "-password-123"
	if _, err := c.CreateAccount(ctx, mciasclient.CreateAccountRequest{Username: name, AccountType: "human", Password: pw, Roles: []string{role}}); err != nil {
		p.t.Fatal(err)
	}
	lc, err := mciasclient.New(p.MCIASGRPC, p.CA.CertPath(), "")
	if err != nil {
		p.t.Fatal(err)
	}
	defer func() { _ = lc.Close() }()
	tok, err := lc.Login(ctx, mciasclient.LoginRequest{Username: name, Password: pw})
	if err != nil {
		p.t.Fatal(err)
	}
	return tok.Token
}

func (p *Platform) startMetacrypt() {
	dir := filepath.Join(p.Dir, "metacrypt")
	cert := p.Issue("metacrypt", "metacrypt.svc."+Domain)
	https, grpcAddr, pki := FreeAddr(p.t), FreeAddr(p.t), FreeAddr(p.t)
	p.MetacryptGRPC = grpcAddr
	cfg := filepath.Join(dir, "metacrypt.toml")
	p.write(cfg, fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[mcias]
server_url = %q
ca_cert = %q
service_name = "metacrypt"
[pki]
external_url = %q
listen_addr = %q
`, https, grpcAddr, cert.CertPath, cert.KeyPath, filepath.Join(dir, "metacrypt.db"), "https://"+p.MCIASHTTPS, p.CA.CertPath(), "http://"+pki, pki))
	pw := filepath.Join(dir, "unseal.password")
	p.write(pw, "platformtest-unseal-password\n")
	p.MustRun("metacrypt", "--config", cfg, "bootstrap", "--password-file", pw, "--root-cert", p.CA.CertPath(),
		"--root-key", filepath.Join(p.Dir, "ca", "ca.key"), "--domain", Domain)
	pr := p.Spawn("metacrypt", os.Environ(), "--config", cfg, "server")
	p.WaitHTTPS(pr, "https://"+https+"/v1/health")
	c, err := metacryptclient.New(grpcAddr, p.CA.CertPath(), "")
	if err != nil {
		p.t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Unseal(context.Background(), "platformtest-unseal-password"); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Platform) startMCNS() {
	dir := filepath.Join(p.Dir, "mcns")
	host := "mcns.svc." + Domain
	cert := p.Issue("mcns", host)
	https, grpcAddr := FreeAddr(p.t), FreeAddr(p.t)
	p.MCNSGRPC = grpcAddr
	p.MCNSDNS = freeUDPTCP(p.t)
	cfg := filepath.Join(dir, "mcns.toml")
	p.write(cfg, fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[mcias]
server_url = %q
ca_cert = %q
service_name = "mcns"
[dns]
listen_addr = %q
[mcns]
agent_accounts = ["mcp-agent"]
[[zones]]
name = %q
primary_ns = %q
admin_email = %q
[[zones]]
name = %q
primary_ns = %q
admin_email = %q
`, https, grpcAddr, cert.CertPath, cert.KeyPath, filepath.Join(dir, "mcns.db"), "https://"+p.MCIASHTTPS, p.CA.CertPath(), p.MCNSDNS,
		Domain+".", host+".", "hostmaster@"+Domain, "svc."+Domain+".", host+".", "hostmaster@"+Domain))
	p.MustRun("mcns", "--config", cfg, "init")
	pr := p.Spawn("mcns", os.Environ(), "--config", cfg, "server")
	p.WaitHTTPS(pr, "https://"+https+"/v1/health")
	p.WaitTCP(pr, p.MCNSDNS)
}

// freeUDPTCP is a loopback port free for both UDP and TCP.
func freeUDPTCP(t testing.TB) string {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		_ = ln.Close()
		if err == nil {
			_ = pc.Close()
			return addr
		}
	}
	t.Fatal("no port free for UDP and TCP")
	return ""
}

func (p *Platform) startProxy() {
	dir := filepath.Join(p.Dir, "mc-proxy")
	p.ProxyHTTPS, p.ProxyMetrics = FreeAddr(p.t), FreeAddr(p.t)
	p.ProxySocket = filepath.Join(dir, "admin.sock")
	cfg := filepath.Join(dir, "mc-proxy.toml")
	p.write(cfg, fmt.Sprintf(`[server]
admin_socket = %q
metrics_addr = %q
shutdown_timeout = "5s"
[database]
path = %q
[[listeners]]
name = "https"
addr = %q
`, p.ProxySocket, p.ProxyMetrics, filepath.Join(dir, "mc-proxy.db"), p.ProxyHTTPS))
	pr := p.Spawn("mc-proxy", os.Environ(), "--config", cfg, "server")
	p.WaitTCP(pr, p.ProxyHTTPS)
	p.wait(pr, p.ProxySocket, func() bool { _, err := os.Stat(p.ProxySocket); return err == nil })
}

func (p *Platform) startMCR() {
	dir := filepath.Join(p.Dir, "mcr")
	cert := p.Issue("mcr", "mcr.svc."+Domain)
	p.MCRHost = FreeAddr(p.t)
	cfg := filepath.Join(dir, "mcr.toml")
	p.write(cfg, fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
shutdown_timeout = "5s"
[database]
path = %q
[mcias]
server_url = %q
ca_cert = %q
service_name = "mcr"
[registry]
public_url = %q
storage = %q
token_key = %q
agent_accounts = ["mcp-agent"]
[gc]
disabled = true
`, p.MCRHost, FreeAddr(p.t), cert.CertPath, cert.KeyPath, filepath.Join(dir, "mcr.db"), "https://"+p.MCIASHTTPS, p.CA.CertPath(),
		"https://"+p.MCRHost, filepath.Join(dir, "storage"), filepath.Join(dir, "token.key")))
	p.MustRun("mcr", "--config", cfg, "init")
	pr := p.Spawn("mcr", os.Environ(), "--config", cfg, "server")
	p.WaitHTTPS(pr, "https://"+p.MCRHost+"/v1/health")
}

// Agent is a running mcp-agent with its configuration.
type Agent struct {
	Proc   *Proc
	Config string
	GRPC   string
	Node   string
	// DataRoot holds the services' data directories.
	DataRoot string
	// CertsDir holds the L7 certificates.
	CertsDir string
	env      []string
}

// AgentOptions adjust the agent's configuration.
type AgentOptions struct {
	// Extra is appended to the configuration (more sections).
	Extra string
	// Drain is [agent] drain (default 1s).
	Drain string
}

// StartAgent writes an agent configuration for the platform and starts
// mcp-agent.
func (p *Platform) StartAgent(o AgentOptions) *Agent {
	p.t.Helper()
	dir := filepath.Join(p.Dir, "mcp")
	cert := p.Issue("mcp-agent", "n1.mcp.test")
	a := &Agent{Config: filepath.Join(dir, "mcp-agent.toml"), GRPC: FreeAddr(p.t), Node: "n1",
		DataRoot: filepath.Join(p.Dir, "srv"), CertsDir: filepath.Join(p.Dir, "mc-proxy", "certs")}
	if o.Drain == "" {
		o.Drain = "1s"
	}
	p.write(a.Config, fmt.Sprintf(`[server]
grpc_addr = %q
tls_cert = %q
tls_key = %q
shutdown_timeout = "5s"
[database]
path = %q
[mcias]
server_url = %q
ca_cert = %q
service_name = "mcp-agent"
[log]
level = "debug"
[agent]
node = "n1"
domain = %q
address = "127.0.0.1"
data_root = %q
token_file = %q
port_range = "21000-29999"
drain = %q
stop_timeout = "5s"
health_timeout = "10s"
health_interval = "200ms"
[runtime]
env = [%q]
[registry]
hosts = [%q]
cert_dir = %q
[metacrypt]
address = %q
certs_dir = %q
[mcproxy]
socket = %q
[mcns]
address = %q
[monitor]
interval = "1s"
orphan_grace = "3s"
flap_restarts = 3
flap_window = "1m"
%s`, a.GRPC, cert.CertPath, cert.KeyPath, filepath.Join(dir, "mcp-agent.db"), "https://"+p.MCIASHTTPS, p.CA.CertPath(),
		Domain, a.DataRoot, p.AgentTokenFile, o.Drain, "CONTAINERS_STORAGE_CONF="+p.StorageConf, p.MCRHost, p.CertDir,
		p.MetacryptGRPC, a.CertsDir, p.ProxySocket, p.MCNSGRPC, o.Extra))
	a.env = os.Environ()
	p.startAgent(a)
	return a
}

func (p *Platform) startAgent(a *Agent) {
	a.Proc = p.Spawn("mcp-agent", a.env, "--config", a.Config, "server")
	p.WaitTCP(a.Proc, a.GRPC)
}

// RestartAgent starts the agent again after it stopped or was killed.
func (p *Platform) RestartAgent(a *Agent) {
	p.t.Helper()
	if !a.Proc.Exited() {
		a.Proc.Stop()
	}
	p.startAgent(a)
}

// CLIConfig writes an mcp.toml for the node and logs the admin in; it
// returns the file.
func (p *Platform) CLIConfig(a *Agent, services, workspace string) string {
	p.t.Helper()
	dir := filepath.Join(p.Dir, "cli")
	path := filepath.Join(dir, "mcp.toml")
	p.write(path, fmt.Sprintf(`[mcias]
address = %q
ca_cert = %q
[auth]
token_path = %q
[services]
dir = %q
[build]
workspace = %q
cert_dir = %q
[[nodes]]
name = %q
addresses = ["127.0.0.1:1", %q]
arch = "amd64"
`, p.MCIASGRPC, p.CA.CertPath(), filepath.Join(dir, "token"), services, workspace, p.CertDir, a.Node, a.GRPC))
	cmd := exec.Command(filepath.Join(p.Bin, "mcp"), "--config", path, "login", "-u", "admin", "--password-stdin") //nolint:gosec // our own test binary
	cmd.Stdin = strings.NewReader(AdminPassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("mcp login: %v\n%s", err, out)
	}
	return path
}

// MCP runs the mcp CLI with the test's podman environment.
func (p *Platform) MCP(cfg string, args ...string) (string, error) {
	return p.Run(p.PodmanEnv(), "mcp", append([]string{"--config", cfg}, args...)...)
}
