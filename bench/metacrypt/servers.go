package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
	"git.metacircular.net/metacircular/internal/seedpki"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
)

const (
	adminPassword  = "bench-admin-password"
	unsealPassword = "bench unseal password, long enough" //nolint:gosec // a throwaway server's password
)

// buildBinaries builds metacrypt and mcias (unless given) and installs
// step-ca into <repo>/.bin/bench once.
func buildBinaries(ctx context.Context, o *options, dir string) error {
	build := func(out, pkg string) error {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg) //nolint:gosec // a path in our temporary directory
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		return nil
	}
	if o.metacryptBin == "" {
		logf("building metacrypt and mcias")
		o.metacryptBin = filepath.Join(dir, "bin", "metacrypt")
		if err := build(o.metacryptBin, "git.metacircular.net/metacircular/metacrypt/cmd/metacrypt"); err != nil {
			return err
		}
	}
	if o.mciasBin == "" {
		o.mciasBin = filepath.Join(dir, "bin", "mcias")
		if err := build(o.mciasBin, "git.metacircular.net/metacircular/mcias/cmd/mcias"); err != nil {
			return err
		}
	}
	if o.stepCABin != "" {
		return nil
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gobin := filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), ".bin", "bench")
	o.stepCABin = filepath.Join(gobin, "step-ca")
	if info, err := buildinfo.ReadFile(o.stepCABin); err == nil && info.Main.Path == stepCAModule && info.Main.Version == stepCAVersion {
		return nil
	}
	logf("installing step-ca %s into %s (takes minutes the first time)", stepCAVersion, gobin)
	cmd := exec.CommandContext(ctx, "go", "install", stepCAModule+"/cmd/step-ca@"+stepCAVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go install step-ca: %w\n%s", err, b)
	}
	return nil
}

// newTransport is an HTTP/1.1 keep-alive transport for conns concurrent
// requests.
func newTransport(tlsCfg *tls.Config, conns int) *http.Transport {
	cfg := tlsCfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	return &http.Transport{
		TLSClientConfig:     cfg,
		MaxIdleConnsPerHost: conns + 4,
		DisableCompression:  true,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
}

// api is a JSON API client of one server.
type api struct {
	base string
	tr   *http.Transport
	hc   *http.Client
}

func newAPI(base string, tlsCfg *tls.Config, conns int) *api {
	tr := newTransport(tlsCfg, conns)
	return &api{base: base, tr: tr, hc: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// statusError is an answer with an unexpected status.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, strings.TrimSpace(e.body))
}

// call sends body (JSON, unless nil) with the bearer token (unless empty)
// and decodes the answer into out (unless nil); any status but want is an
// error.
func (a *api) call(ctx context.Context, method, path, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req) //nolint:gosec // loopback server this program started
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return &statusError{method: method, path: path, status: resp.StatusCode, body: string(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: answer: %w", method, path, err)
		}
	}
	return nil
}

// mciasServer is the running MCIAS with the tokens the benchmark uses.
type mciasServer struct {
	proc       *benchkit.Proc
	url        string
	adminToken string
	agentToken string
}

// startMCIAS runs MCIAS as the launcher does: `mcias init`, `mcias
// system-account mcp-agent` for the agent's token, then the server; the
// admin logs in for the setup calls.
func startMCIAS(ctx context.Context, o options, dir string, ca *seedpki.CA, cert seedpki.Issued, tlsCfg *tls.Config, prefix []string) (*mciasServer, error) {
	d := filepath.Join(dir, "mcias")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	grpcAddr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(d, "mcias.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[log]
level = "info"
`, addr, grpcAddr, cert.CertPath, cert.KeyPath, filepath.Join(d, "mcias.db")), 0o600); err != nil {
		return nil, err
	}
	pwFile := filepath.Join(d, "admin-password")
	if err := os.WriteFile(pwFile, []byte(adminPassword), 0o600); err != nil {
		return nil, err
	}
	if b, err := exec.CommandContext(ctx, o.mciasBin, "--config", cfg, "init", "--password-file", pwFile).CombinedOutput(); err != nil { //nolint:gosec // the binary just built
		return nil, fmt.Errorf("mcias init: %w\n%s", err, b)
	}
	tokenFile := filepath.Join(d, "agent.token")
	if b, err := exec.CommandContext(ctx, o.mciasBin, "--config", cfg, "system-account", agent, "--token-file", tokenFile).CombinedOutput(); err != nil { //nolint:gosec // the binary just built
		return nil, fmt.Errorf("mcias system-account %s: %w\n%s", agent, err, b)
	}
	tok, err := os.ReadFile(tokenFile) //nolint:gosec // in our temporary directory
	if err != nil {
		return nil, err
	}
	m := &mciasServer{url: "https://" + addr, agentToken: strings.TrimSpace(string(tok))}
	if m.proc, err = benchkit.Start("mcias", filepath.Join(d, "mcias.log"), prefix, o.mciasBin, nil, "--config", cfg, "server"); err != nil {
		return m, err
	}
	if err := benchkit.WaitStatus(ctx, m.proc, m.url+"/v1/health", http.StatusOK, tlsCfg); err != nil {
		return m, err
	}
	admin, err := mciasclient.New(grpcAddr, ca.CertPath(), "")
	if err != nil {
		return m, err
	}
	defer func() { _ = admin.Close() }()
	login, err := admin.Login(ctx, mciasclient.LoginRequest{Username: "admin", Password: adminPassword})
	if err != nil {
		return m, fmt.Errorf("mcias admin login: %w", err)
	}
	m.adminToken = login.Token
	return m, nil
}

// target is one server under test.
type target struct {
	name string
	proc *benchkit.Proc
	// pids are the processes whose CPU time is the server's.
	pids []int
	base string
	api  *api
	// config describes the configuration, for the report.
	config string
}

// metacryptServer is the running Metacrypt.
type metacryptServer struct {
	target
	grpcAddr string
	caPath   string
	admin    string // the MCIAS admin's token
	agent    string // mcp-agent's token
}

// startMetacrypt runs Metacrypt as the launcher does (metacrypt.toml,
// `metacrypt bootstrap` with the seed root, the server, the unseal over
// the API) and adds, as the admin, what the benchmark's figures need: a
// limit letting mcp-agent's ACME orders name 127.0.0.1, a transit mount
// with a key and an SSH mount with a CA and a profile, each with a rule
// for mcp-agent.
func startMetacrypt(ctx context.Context, o options, dir string, ca *seedpki.CA, cert seedpki.Issued, mcias *mciasServer, chalPort int, tlsCfg *tls.Config, prefix []string) (*metacryptServer, error) {
	d := filepath.Join(dir, "metacrypt")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	var addrs [3]string
	for i := range addrs {
		var err error
		if addrs[i], err = benchkit.FreeAddr(); err != nil {
			return nil, err
		}
	}
	httpsAddr, grpcAddr, pkiAddr := addrs[0], addrs[1], addrs[2]
	cfg := filepath.Join(d, "metacrypt.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `[server]
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

[log]
level = "info"

[pki]
external_url = %q
listen_addr = %q

[acme]
http01_port = %d
`, httpsAddr, grpcAddr, cert.CertPath, cert.KeyPath, filepath.Join(d, "metacrypt.db"), mcias.url, ca.CertPath(),
		"http://"+pkiAddr, pkiAddr, chalPort), 0o600); err != nil {
		return nil, err
	}
	pwFile := filepath.Join(d, "unseal.password")
	if err := os.WriteFile(pwFile, []byte(unsealPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	if b, err := exec.CommandContext(ctx, o.metacryptBin, "--config", cfg, "bootstrap", "--password-file", pwFile, //nolint:gosec // the binary just built
		"--root-cert", ca.CertPath(), "--root-key", filepath.Join(filepath.Dir(ca.CertPath()), "ca.key"),
		"--domain", domain).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("metacrypt bootstrap: %w\n%s", err, b)
	}
	m := &metacryptServer{grpcAddr: grpcAddr, caPath: ca.CertPath(), admin: mcias.adminToken, agent: mcias.agentToken}
	m.name, m.base = "metacrypt", "https://"+httpsAddr
	var err error
	if m.proc, err = benchkit.Start("metacrypt", filepath.Join(d, "metacrypt.log"), prefix, o.metacryptBin, nil, "--config", cfg, "server"); err != nil {
		return m, err
	}
	m.pids = []int{m.proc.Pid(), mcias.proc.Pid()}
	m.config = "the metacrypt binary; metacrypt.toml as the launcher writes it ([server] TLS 1.3, [database], [mcias], [log] info, " +
		"[pki] external_url + plain listener) + [acme] http01_port; default [seal] (Argon2id 64 MiB, 3 passes, used once at unseal); " +
		"`metacrypt bootstrap` (seed root imported, issuers infra/services/clients, mcp-agent's rule and *.svc." + domain + " limit); unsealed over REST"
	if err := benchkit.WaitStatus(ctx, m.proc, m.base+"/v1/health", http.StatusOK, tlsCfg); err != nil {
		return m, err
	}
	m.api = newAPI(m.base, tlsCfg, max(o.clients, o.orders))
	if err := m.api.call(ctx, http.MethodPost, "/v1/sys/unseal", "", map[string]string{"password": unsealPassword}, http.StatusOK, nil); err != nil {
		return m, fmt.Errorf("unseal: %w", err)
	}
	return m, m.setup(ctx, o)
}

func (m *metacryptServer) setup(ctx context.Context, o options) error {
	type step struct {
		path   string
		status int
		body   any
	}
	subject := map[string]any{"accounts": []string{agent}}
	steps := []step{
		{"/v1/policy/limits", http.StatusCreated, map[string]any{"priority": 10, "effect": "allow", "subject": subject,
			"mounts": []string{"pki"}, "ip_ranges": []string{"127.0.0.1/32"}, "description": "bench: ACME orders for 127.0.0.1"}},
	}
	if o.figures["transit"] {
		steps = append(steps,
			step{"/v1/sys/mounts", http.StatusCreated, map[string]any{"name": "transit", "type": "transit"}},
			step{"/v1/transit/transit/keys", http.StatusOK, map[string]any{"name": "bench", "type": "aes256-gcm96"}},
			step{"/v1/policy/rules", http.StatusCreated, map[string]any{"priority": 10, "effect": "allow", "subject": subject,
				"mounts": []string{"transit"}, "operations": []string{"encrypt", "decrypt"}, "resources": []string{"key/bench"}}})
	}
	if o.figures["ssh"] {
		steps = append(steps,
			step{"/v1/sys/mounts", http.StatusCreated, map[string]any{"name": "ssh", "type": "ssh"}},
			step{"/v1/ssh/ssh/ca/generate", http.StatusOK, map[string]any{"key_type": "ed25519"}},
			step{"/v1/ssh/ssh/profiles", http.StatusOK, map[string]any{"name": "users", "cert_type": "user",
				"allowed_principals": []string{"*"}, "default_ttl": "1h", "max_ttl": "24h"}},
			step{"/v1/policy/rules", http.StatusCreated, map[string]any{"priority": 10, "effect": "allow", "subject": subject,
				"mounts": []string{"ssh"}, "operations": []string{"sign"}, "resources": []string{"profile/users"}}})
	}
	for _, s := range steps {
		err := m.api.call(ctx, http.MethodPost, s.path, m.admin, s.body, s.status, nil)
		var se *statusError
		if errors.As(err, &se) && se.status/100 == 2 {
			err = nil // another success status than assumed: fine
		}
		if err != nil {
			return fmt.Errorf("metacrypt setup: %w", err)
		}
	}
	return nil
}

// stepServer is the running step-ca.
type stepServer struct {
	target
	provisioner string
	jwkKey      *ecdsa.PrivateKey
	kid         string
	audience    string
}

// startStepCA writes a ca.json as `step ca init` does (badger v2
// database, TLS 1.2-1.3, the seed root, an intermediate signed by it),
// with a JWK provisioner "bench" whose key this program keeps and an ACME
// provisioner "acme", and runs step-ca with --insecure --acme-http-port so
// http-01 validations reach the challenge server.
func startStepCA(ctx context.Context, o options, dir string, ca *seedpki.CA, chalPort int, tlsCfg *tls.Config, prefix []string) (*stepServer, error) {
	d := filepath.Join(dir, "step-ca")
	if err := os.MkdirAll(filepath.Join(d, "steppath"), 0o700); err != nil {
		return nil, err
	}
	crtPath, keyPath := filepath.Join(d, "intermediate_ca.crt"), filepath.Join(d, "intermediate_ca_key")
	if err := writeIntermediate(ca, crtPath, keyPath); err != nil {
		return nil, err
	}
	jwkKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	jwk, kid := publicJWK(&jwkKey.PublicKey)
	jwk["use"], jwk["alg"], jwk["kid"] = "sig", "ES256", kid
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	conf := map[string]any{
		"root":            ca.CertPath(),
		"crt":             crtPath,
		"key":             keyPath,
		"address":         addr,
		"insecureAddress": "",
		"dnsNames":        []string{"127.0.0.1"},
		"logger":          map[string]any{"format": "text"},
		"db":              map[string]any{"type": "badgerv2", "dataSource": filepath.Join(d, "db"), "badgerFileLoadingMode": ""},
		"authority": map[string]any{"provisioners": []any{
			map[string]any{"type": "JWK", "name": "bench", "key": jwk},
			map[string]any{"type": "ACME", "name": "acme"},
		}},
		"tls": map[string]any{"cipherSuites": []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
			"minVersion": 1.2, "maxVersion": 1.3, "renegotiation": false},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(d, "ca.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	s := &stepServer{provisioner: "bench", jwkKey: jwkKey, kid: kid, audience: "https://" + addr + "/1.0/sign"}
	s.name, s.base = "step-ca", "https://"+addr
	if s.proc, err = benchkit.Start("step-ca", filepath.Join(d, "step-ca.log"), prefix, o.stepCABin,
		[]string{"STEPPATH=" + filepath.Join(d, "steppath")},
		cfgPath, "--insecure", "--acme-http-port", strconv.Itoa(chalPort)); err != nil {
		return s, err
	}
	s.pids = []int{s.proc.Pid()}
	s.config = "ca.json as `step ca init` writes it: badgerv2 database (its default; badger SyncWrites=true), TLS 1.2-1.3, " +
		"the seed root, a P-256 intermediate signed by it (unencrypted key), a JWK provisioner (default claims: 24h certificates) and an ACME " +
		"provisioner (no EAB); log format text (one line per request, to a file); flags --insecure --acme-http-port " + strconv.Itoa(chalPort)
	if err := benchkit.WaitStatus(ctx, s.proc, s.base+"/health", http.StatusOK, tlsCfg); err != nil {
		return s, err
	}
	s.api = newAPI(s.base, tlsCfg, max(o.clients, o.orders))
	return s, nil
}

// writeIntermediate makes a P-256 intermediate CA signed by the seed
// root, as Metacrypt's issuers are (path length 0, 5 years, not past the
// root), and writes its certificate and unencrypted key.
func writeIntermediate(ca *seedpki.CA, crtPath, keyPath string) error {
	rootKeyPEM, err := os.ReadFile(filepath.Join(filepath.Dir(ca.CertPath()), "ca.key"))
	if err != nil {
		return err
	}
	block, _ := pem.Decode(rootKeyPEM)
	if block == nil {
		return errors.New("seed root key: no PEM block")
	}
	rootKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("seed root key: %w", err)
	}
	signer, ok := rootKey.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("seed root key is %T, not ECDSA", rootKey)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	root := ca.Certificate()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Bench step-ca Intermediate CA", Organization: []string{"Metacircular"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              minTime(now.AddDate(5, 0, 0), root.NotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, signer)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// publicJWK is the public JWK of a P-256 key and its RFC 7638
// thumbprint.
func publicJWK(pub *ecdsa.PublicKey) (map[string]any, string) {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err) // a P-256 key always encodes
	}
	x := base64.RawURLEncoding.EncodeToString(raw[1:33])
	y := base64.RawURLEncoding.EncodeToString(raw[33:65])
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return map[string]any{"kty": "EC", "crv": "P-256", "x": x, "y": y}, base64.RawURLEncoding.EncodeToString(sum[:])
}
