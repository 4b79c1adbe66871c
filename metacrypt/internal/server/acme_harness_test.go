package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	mcnsclient "git.metacircular.net/metacircular/mcns/client"
	"git.metacircular.net/metacircular/metacrypt/client"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws/jwstest"
)

// mcnsZone is the MCNS zone of the ACME tests: "*" A 127.0.0.1 in it, so
// every <label>.svc.mcp.test resolves (for Metacrypt's validator, through
// [acme] resolvers) to the test's own challenge responders.
const mcnsZone = "svc." + domain

// mcns is one MCNS (the real binary, as an operator runs it) shared by the
// ACME tests, started by the first test that needs it and stopped by
// TestMain.
var mcns struct {
	once sync.Once
	err  error
	// dns is its DNS listener (UDP and TCP), grpc its record API.
	dns, grpc string
	stop      func()
	logs      *syncbuf.Buffer
}

// needMCNS starts the shared MCNS if it is not running yet.
func needMCNS(t *testing.T) {
	t.Helper()
	mcns.once.Do(func() { mcns.err = startMCNS() })
	if mcns.err != nil {
		t.Fatalf("start MCNS: %v", mcns.err)
	}
}

func stopMCNS() {
	if mcns.stop != nil {
		mcns.stop()
	}
}

// freeUDPTCP is a loopback port free for both TCP and UDP a moment ago.
func freeUDPTCP() (string, error) {
	for range 20 {
		addr, err := freeAddr()
		if err != nil {
			return "", err
		}
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			_ = pc.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no port free for TCP and UDP")
}

// buildTool builds a platform binary into env.dir once.
var buildMu sync.Mutex

func buildTool(pkg, name string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	bin := filepath.Join(env.dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

func startMCNS() error {
	bin, err := buildTool("git.metacircular.net/metacircular/mcns/cmd/mcns", "mcns")
	if err != nil {
		return err
	}
	cert, err := env.ca.Issue("mcns", seedpki.IssueRequest{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return err
	}
	dir := filepath.Join(env.dir, "mcns-data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	if mcns.grpc, err = freeAddr(); err != nil {
		return err
	}
	if mcns.dns, err = freeUDPTCP(); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "mcns.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[server]
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
service_name = "mcns"

[dns]
listen_addr = %q

[[zones]]
name = %q

[[zones]]
name = %q
`, httpAddr, mcns.grpc, cert.CertPath, cert.KeyPath, filepath.Join(dir, "mcns.db"), env.mciasURL, env.ca.CertPath(),
		mcns.dns, mcnsZone, domain)), 0o600); err != nil {
		return err
	}
	mcns.logs = &syncbuf.Buffer{}
	cmd := exec.Command(bin, "--config", cfg, "server")
	cmd.Stdout, cmd.Stderr = mcns.logs, mcns.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	mcns.stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	if err := waitHealthy("https://"+httpAddr+"/v1/health", done); err != nil {
		return fmt.Errorf("%w\nmcns output:\n%s", err, mcns.logs.String())
	}
	c, err := mcnsclient.New(mcns.grpc, env.ca.CertPath(), env.tokens[admin])
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_, err = c.CreateRecord(context.Background(), mcnsZone, mcnsclient.RecordFields{Name: "*", Type: "A", TTL: 5, Value: "127.0.0.1"})
	return err
}

// acmeEnv is a Metacrypt set up like the platform's (harness.ready) whose
// ACME validator resolves through the shared MCNS and connects to
// httpPort and tlsPort for http-01 and tls-alpn-01.
type acmeEnv struct {
	*harness
	httpPort, tlsPort int
	// directory is the ACME directory of issuer "services" in mount "pki".
	directory string
}

func freePort(t *testing.T) int {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	var p int
	_, _ = fmt.Sscan(port, &p)
	return p
}

// acmeTOML is the [acme] section of the tests: quick retries.
func acmeTOML(httpPort, tlsPort int, more string) string {
	return fmt.Sprintf(`
[acme]
resolvers = [%q]
http01_port = %d
tls_alpn01_port = %d
validation_backoff = "300ms"
validation_timeout = "5s"
%s`, mcns.dns, httpPort, tlsPort, more)
}

// startACME runs a ready Metacrypt for ACME tests.
func startACME(t *testing.T, more string) *acmeEnv {
	t.Helper()
	needMCNS(t)
	e := &acmeEnv{httpPort: freePort(t), tlsPort: freePort(t)}
	e.harness = startWith(t, "", acmeTOML(e.httpPort, e.tlsPort, more))
	e.ready(t, false)
	e.directory = e.rest + "/v1/pki/pki/acme/services/directory"
	return e
}

// url is an ACME URL of the services directory.
func (e *acmeEnv) url(path string) string {
	return strings.TrimSuffix(e.directory, "/directory") + "/" + path
}

// eab makes EAB credentials for an identity (the admin makes them for
// another identity; "" binds them to the admin).
func (e *acmeEnv) eab(t *testing.T, forAccount string) client.EABKey {
	t.Helper()
	k, err := e.client(t, admin).CreateEAB(t.Context(), "pki", client.EABRequest{Account: forAccount})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func eabKey(t *testing.T, k client.EABKey) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(k.HMACKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// httpClient trusts the test CA.
func httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig()}}
}

// acmeClient is an x/crypto/acme client of the services directory.
func (e *acmeEnv) acmeClient(key crypto.Signer) *acme.Client {
	return &acme.Client{Key: key, DirectoryURL: e.directory, HTTPClient: httpClient()}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// register makes an account for forAccount's identity with fresh EAB
// credentials.
func (e *acmeEnv) register(t *testing.T, forAccount string) *acme.Client {
	t.Helper()
	ac := e.acmeClient(newKey(t))
	k := e.eab(t, forAccount)
	if _, err := ac.Register(t.Context(), &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: k.KID, Key: eabKey(t, k)}}, acme.AcceptTOS); err != nil {
		t.Fatalf("register: %v", err)
	}
	return ac
}

// http01 is a challenge responder on 127.0.0.1:<the validator's
// http01_port>.
type http01 struct {
	mu     sync.Mutex
	tokens map[string]string
	hits   int
	// delay holds every answer back (a slow target).
	delay atomic.Int64
}

func (e *acmeEnv) serveHTTP01(t *testing.T) *http01 {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	r := &http01{tokens: map[string]string{}}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		time.Sleep(time.Duration(r.delay.Load()))
		r.mu.Lock()
		defer r.mu.Unlock()
		r.hits++
		v, ok := r.tokens[strings.TrimPrefix(req.URL.Path, "/.well-known/acme-challenge/")]
		if !ok {
			http.NotFound(w, req)
			return
		}
		_, _ = io.WriteString(w, v)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *http01) set(token, keyAuth string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens[token] = keyAuth
}

// authorizeHTTP01 answers every authorization of an order with http-01
// and waits for the order to be ready.
func (e *acmeEnv) authorizeHTTP01(t *testing.T, ac *acme.Client, resp *http01, o *acme.Order) {
	t.Helper()
	ctx := t.Context()
	for _, u := range o.AuthzURLs {
		z, err := ac.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range z.Challenges {
			if ch.Type != "http-01" {
				continue
			}
			ka, err := ac.HTTP01ChallengeResponse(ch.Token)
			if err != nil {
				t.Fatal(err)
			}
			resp.set(ch.Token, ka)
			if _, err := ac.Accept(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ac.WaitAuthorization(ctx, u); err != nil {
			t.Fatalf("authorization of %s: %v", z.Identifier.Value, err)
		}
	}
	if _, err := ac.WaitOrder(ctx, o.URI); err != nil {
		t.Fatal(err)
	}
}

// csrFor is a DER CSR for names with a new P-256 key.
func csrFor(t *testing.T, names ...string) ([]byte, crypto.Signer) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.CertificateRequest{}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// problem is an ACME problem document as a client sees it.
type problem struct {
	Type       string   `json:"type"`
	Detail     string   `json:"detail"`
	Status     int      `json:"status"`
	Algorithms []string `json:"algorithms"`
}

// rawResponse is an answer to a hand-made request.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResponse) problem(t *testing.T) problem {
	t.Helper()
	var p problem
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d, Content-Type %q, body %s: want a problem document", r.status, ct, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantProblem checks an answer is the problem of type typ
// ("badNonce").
func (r rawResponse) wantProblem(t *testing.T, typ string, status int) problem {
	t.Helper()
	p := r.problem(t)
	if p.Type != "urn:ietf:params:acme:error:"+typ || r.status != status {
		t.Fatalf("got %d %s (%s), want %d %s", r.status, p.Type, p.Detail, status, typ)
	}
	return p
}

// do sends a request to the ACME server.
func do(t *testing.T, method, url, contentType string, body []byte) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c := httpClient()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// nonce is a fresh nonce.
func (e *acmeEnv) nonce(t *testing.T) string {
	t.Helper()
	r := do(t, http.MethodHead, e.url("new-nonce"), "", nil)
	if r.status != http.StatusOK || r.header.Get("Replay-Nonce") == "" {
		t.Fatalf("new-nonce: %d %v", r.status, r.header)
	}
	return r.header.Get("Replay-Nonce")
}

// post sends a JWS.
func (e *acmeEnv) post(t *testing.T, url string, jwsBody []byte) rawResponse {
	t.Helper()
	return do(t, http.MethodPost, url, "application/jose+json", jwsBody)
}

// rawAccount registers an account by hand for key and returns its URL.
func (e *acmeEnv) rawAccount(t *testing.T, key crypto.Signer) string {
	t.Helper()
	k := e.eab(t, agent)
	payload, _ := json.Marshal(map[string]any{
		"termsOfServiceAgreed":   true,
		"externalAccountBinding": jwstest.EAB(k.KID, eabKey(t, k), e.url("new-account"), key.Public()),
	})
	r := e.post(t, e.url("new-account"), jwstest.Sign(key, jwstest.Header{Nonce: e.nonce(t), URL: e.url("new-account"), JWK: jwstest.PublicJWK(key.Public())}, payload))
	if r.status != http.StatusCreated {
		t.Fatalf("new-account: %d %s", r.status, r.body)
	}
	return r.header.Get("Location")
}

// tlsALPN serves tls-alpn-01 certificates on 127.0.0.1:<tlsPort>.
func (e *acmeEnv) serveTLSALPN(t *testing.T, cert tls.Certificate) {
	t.Helper()
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.tlsPort), &tls.Config{
		Certificates: []tls.Certificate{cert}, NextProtos: []string{acme.ALPNProto}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				if tc, ok := c.(*tls.Conn); ok {
					_ = tc.Handshake()
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
}

// mcnsClient is an MCNS record API client acting as caller.
func mcnsClient(t *testing.T, caller string) *mcnsclient.Client {
	t.Helper()
	c, err := mcnsclient.New(mcns.grpc, env.ca.CertPath(), env.tokens[caller])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
