package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// The figures.
const (
	figIssueKey     = "issue-key"
	figIssueCSR     = "issue-csr"
	figACMEPoll     = "acme-poll"
	figACMEStd      = "acme-std"
	figTransitREST  = "transit-rest"
	figTransitGRPC  = "transit-grpc"
	figTransitBatch = "transit-batch"
	figSSH          = "ssh"
	rawAES          = "raw-aes"
	rawSSH          = "raw-ssh"
	rawSign         = "raw-sign"
	rawKeySign      = "raw-keysign"
)

// csrItem is a P-256 key's CSR for one name.
type csrItem struct {
	name string
	der  []byte
	pem  string
}

// csrPool holds CSRs made before the timed regions, handed out in turn:
// DNS-name CSRs for issuance, IP CSRs (127.0.0.1) for ACME finalization.
type csrPool struct {
	dns  []csrItem
	ip   []csrItem
	next atomic.Uint64
	nip  atomic.Uint64
}

func newCSRPool(n int) (*csrPool, error) {
	p := &csrPool{dns: make([]csrItem, n), ip: make([]csrItem, min(n, 256))}
	var g errgroup.Group
	g.SetLimit(4)
	for i := range p.dns {
		g.Go(func() (err error) {
			name := fmt.Sprintf("c%05d.svc.%s", i, domain)
			p.dns[i], err = makeCSR(name, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}})
			return err
		})
	}
	for i := range p.ip {
		g.Go(func() (err error) {
			p.ip[i], err = makeCSR("127.0.0.1", &x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
			return err
		})
	}
	return p, g.Wait()
}

func makeCSR(name string, tmpl *x509.CertificateRequest) (csrItem, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return csrItem{}, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return csrItem{}, err
	}
	return csrItem{name: name, der: der, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}, nil
}

func (p *csrPool) nextDNS() csrItem { return p.dns[(p.next.Add(1)-1)%uint64(len(p.dns))] }
func (p *csrPool) nextIP() csrItem  { return p.ip[(p.nip.Add(1)-1)%uint64(len(p.ip))] }

// checkLeaf parses a PEM certificate (the first block) and checks it
// names name.
func checkLeaf(certPEM, name string) error {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		return errors.New("answer without a PEM certificate")
	}
	return checkLeafDER(block.Bytes, name)
}

func checkLeafDER(der []byte, name string) error {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("answer's certificate: %w", err)
	}
	if ip := net.ParseIP(name); ip != nil {
		if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(ip) {
			return fmt.Errorf("certificate for %v, want %s", c.IPAddresses, name)
		}
		return nil
	}
	if !slices.Contains(c.DNSNames, name) {
		return fmt.Errorf("certificate for %v, want %s", c.DNSNames, name)
	}
	return nil
}

// mcIssue is Metacrypt's issue with a server-side key.
func mcIssue(m *metacryptServer) op {
	var seq atomic.Int64
	return func(ctx context.Context, _ int) (int, int, error) {
		name := fmt.Sprintf("k%d.svc.%s", seq.Add(1), domain)
		var out struct {
			CertificatePEM string `json:"certificate_pem"`
			PrivateKeyPEM  string `json:"private_key_pem"`
		}
		if err := m.api.call(ctx, http.MethodPost, "/v1/pki/pki/issue/services", m.agent,
			map[string]any{"dns_names": []string{name}}, http.StatusOK, &out); err != nil {
			return 0, 0, err
		}
		if !strings.Contains(out.PrivateKeyPEM, "PRIVATE KEY") {
			return 0, 0, errors.New("issue: no private key in the answer")
		}
		return 1, 0, checkLeaf(out.CertificatePEM, name)
	}
}

// mcSign is Metacrypt's sign-CSR.
func mcSign(m *metacryptServer, pool *csrPool) op {
	return func(ctx context.Context, _ int) (int, int, error) {
		c := pool.nextDNS()
		var out struct {
			CertificatePEM string `json:"certificate_pem"`
		}
		if err := m.api.call(ctx, http.MethodPost, "/v1/pki/pki/sign/services", m.agent,
			map[string]any{"csr_pem": c.pem}, http.StatusOK, &out); err != nil {
			return 0, 0, err
		}
		return 1, 0, checkLeaf(out.CertificatePEM, c.name)
	}
}

// stepSign is step-ca's /1.0/sign with a CSR and a one-time token signed
// here for the JWK provisioner.
func stepSign(s *stepServer, pool *csrPool) op {
	return func(ctx context.Context, _ int) (int, int, error) {
		c := pool.nextDNS()
		ott, err := s.ott(c.name)
		if err != nil {
			return 0, 0, err
		}
		var out struct {
			Crt string `json:"crt"`
		}
		if err := s.api.call(ctx, http.MethodPost, "/1.0/sign", "", map[string]any{"csr": c.pem, "ott": ott}, http.StatusCreated, &out); err != nil {
			return 0, 0, err
		}
		return 1, 0, checkLeaf(out.Crt, c.name)
	}
}

// ott is a one-time token for name as `step ca token` makes it: a compact
// JWS (ES256) with the provisioner's key, kid its thumbprint, and the
// claims step-ca's JWK provisioner checks (iss, aud, sub, sans, a unique
// jti, iat/nbf/exp 5 minutes).
func (s *stepServer) ott(name string) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := time.Now().Unix()
	header, err := json.Marshal(map[string]string{"alg": "ES256", "kid": s.kid, "typ": "JWT"})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss": s.provisioner, "aud": s.audience, "sub": name, "sans": []string{name},
		"jti": hex.EncodeToString(jti), "iat": now, "nbf": now, "exp": now + 300,
	})
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	sum := sha256.Sum256([]byte(input))
	r, sig, err := ecdsa.Sign(rand.Reader, s.jwkKey, sum[:])
	if err != nil {
		return "", err
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	sig.FillBytes(raw[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(raw), nil
}

// challengeServer answers http-01 challenges on 127.0.0.1.
type challengeServer struct {
	port int
	srv  *http.Server
	mu   sync.RWMutex
	keys map[string]string // token -> key authorization
	hits atomic.Int64
}

func startChallengeServer() (*challengeServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		_ = ln.Close()
		return nil, fmt.Errorf("challenge listener address %v is not TCP", ln.Addr())
	}
	c := &challengeServer{port: addr.Port, keys: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/acme-challenge/{token}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.RLock()
		ka, ok := c.keys[r.PathValue("token")]
		c.mu.RUnlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		c.hits.Add(1)
		_, _ = w.Write([]byte(ka))
	})
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

func (c *challengeServer) set(token, ka string) {
	c.mu.Lock()
	c.keys[token] = ka
	c.mu.Unlock()
}

func (c *challengeServer) del(token string) {
	c.mu.Lock()
	delete(c.keys, token)
	c.mu.Unlock()
}

func (c *challengeServer) close() { _ = c.srv.Close() }

// acmeTarget is one ACME directory with one registered account per
// concurrent order.
type acmeTarget struct {
	name    string
	pids    []int
	dir     string
	clients []*acme.Client
	tr      *http.Transport
}

// eab is External Account Binding credentials, when the server needs them.
type eabFunc func(ctx context.Context) (*acme.ExternalAccountBinding, error)

func newACMETarget(ctx context.Context, t *target, dir string, o options, eab eabFunc) (*acmeTarget, error) {
	a := &acmeTarget{name: t.name, pids: t.pids, dir: dir, tr: newTransport(t.api.tr.TLSClientConfig, o.orders)}
	hc := &http.Client{Transport: a.tr, Timeout: time.Minute}
	for range o.orders {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		c := &acme.Client{Key: key, DirectoryURL: dir, HTTPClient: hc, UserAgent: "bench/metacrypt"}
		acct := &acme.Account{}
		if eab != nil {
			if acct.ExternalAccountBinding, err = eab(ctx); err != nil {
				return nil, err
			}
		}
		if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil {
			return nil, fmt.Errorf("%s: register an ACME account: %w", t.name, err)
		}
		a.clients = append(a.clients, c)
	}
	return a, nil
}

// metacryptEAB makes EAB credentials bound to mcp-agent (as the admin).
func metacryptEAB(m *metacryptServer) eabFunc {
	return func(ctx context.Context) (*acme.ExternalAccountBinding, error) {
		var out struct {
			EAB struct {
				KID string `json:"kid"`
			} `json:"eab"`
			HMACKey string `json:"hmac_key"`
		}
		if err := m.api.call(ctx, http.MethodPost, "/v1/pki/pki/eab", m.admin,
			map[string]any{"account": agent, "account_type": "system"}, http.StatusCreated, &out); err != nil {
			return nil, fmt.Errorf("EAB credentials: %w", err)
		}
		key, err := base64.RawURLEncoding.DecodeString(out.HMACKey)
		if err != nil {
			return nil, fmt.Errorf("EAB hmac_key: %w", err)
		}
		return &acme.ExternalAccountBinding{KID: out.EAB.KID, Key: key}, nil
	}
}

// acmeOrder runs one full order for 127.0.0.1 with worker w's account:
// new-order, the authorization, http-01, polling, finalization, the
// chain. With poll 0 the client waits as x/crypto/acme does (Retry-After,
// 1 s when absent); otherwise it polls every poll.
func (a *acmeTarget) order(chal *challengeServer, pool *csrPool, poll time.Duration) op {
	return func(ctx context.Context, w int) (int, int, error) {
		c := a.clients[w]
		polls := 0
		o, err := c.AuthorizeOrder(ctx, acme.IPIDs("127.0.0.1"))
		if err != nil {
			return 0, 0, fmt.Errorf("new-order: %w", err)
		}
		for _, u := range o.AuthzURLs {
			z, err := c.GetAuthorization(ctx, u)
			if err != nil {
				return 0, 0, fmt.Errorf("authorization: %w", err)
			}
			if z.Status == acme.StatusValid {
				continue
			}
			var ch *acme.Challenge
			for _, x := range z.Challenges {
				if x.Type == "http-01" {
					ch = x
				}
			}
			if ch == nil {
				return 0, 0, fmt.Errorf("authorization %s offers no http-01", u)
			}
			ka, err := c.HTTP01ChallengeResponse(ch.Token)
			if err != nil {
				return 0, 0, err
			}
			chal.set(ch.Token, ka)
			if _, err := c.Accept(ctx, ch); err != nil {
				chal.del(ch.Token)
				return 0, 0, fmt.Errorf("challenge: %w", err)
			}
			if poll == 0 {
				_, err = c.WaitAuthorization(ctx, u)
			} else {
				err = pollUntil(ctx, poll, &polls, func() (bool, error) {
					z, err := c.GetAuthorization(ctx, u)
					if err != nil {
						return false, err
					}
					switch z.Status {
					case acme.StatusValid:
						return true, nil
					case acme.StatusInvalid:
						return false, fmt.Errorf("authorization %s invalid", u)
					}
					return false, nil
				})
			}
			chal.del(ch.Token)
			if err != nil {
				return 0, 0, fmt.Errorf("authorization: %w", err)
			}
		}
		if poll == 0 {
			if o, err = c.WaitOrder(ctx, o.URI); err != nil {
				return 0, 0, fmt.Errorf("order: %w", err)
			}
		} else {
			err = pollUntil(ctx, poll, &polls, func() (bool, error) {
				x, err := c.GetOrder(ctx, o.URI)
				if err != nil {
					return false, err
				}
				if x.Status == acme.StatusInvalid {
					return false, fmt.Errorf("order %s invalid", o.URI)
				}
				return x.Status == acme.StatusReady || x.Status == acme.StatusValid, nil
			})
			if err != nil {
				return 0, 0, fmt.Errorf("order: %w", err)
			}
		}
		csr := pool.nextIP()
		ders, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr.der, true)
		if err != nil {
			return 0, 0, fmt.Errorf("finalize: %w", err)
		}
		if len(ders) < 2 {
			return 0, 0, fmt.Errorf("chain of %d certificates, want the leaf and its issuer", len(ders))
		}
		return 1, polls, checkLeafDER(ders[0], "127.0.0.1")
	}
}

// pollUntil calls f at once and then every d until it is done.
func pollUntil(ctx context.Context, d time.Duration, polls *int, f func() (bool, error)) error {
	for {
		*polls++
		done, err := f()
		if err != nil || done {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// transitREST is one encrypt and one decrypt of a random payload over
// REST.
func transitREST(m *metacryptServer, size int) op {
	return func(ctx context.Context, _ int) (int, int, error) {
		pt := make([]byte, size)
		_, _ = rand.Read(pt)
		var enc struct {
			Ciphertext string `json:"ciphertext"`
		}
		if err := m.api.call(ctx, http.MethodPost, "/v1/transit/transit/encrypt/bench", m.agent,
			map[string]any{"plaintext": pt}, http.StatusOK, &enc); err != nil {
			return 0, 0, err
		}
		var dec struct {
			Plaintext []byte `json:"plaintext"`
		}
		if err := m.api.call(ctx, http.MethodPost, "/v1/transit/transit/decrypt/bench", m.agent,
			map[string]any{"ciphertext": enc.Ciphertext}, http.StatusOK, &dec); err != nil {
			return 0, 0, err
		}
		if !bytes.Equal(dec.Plaintext, pt) {
			return 0, 0, errors.New("transit: decrypted plaintext differs")
		}
		return 1, 0, nil
	}
}

// grpcConn is a gRPC connection to Metacrypt sending the agent's token.
func grpcConn(m *metacryptServer) (*grpc.ClientConn, error) {
	return grpc.NewClient(m.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(m.api.tr.TLSClientConfig.Clone())))
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// transitGRPC is one Encrypt and one Decrypt over gRPC.
func transitGRPC(m *metacryptServer, tc mcv1.TransitServiceClient, size int) op {
	return func(ctx context.Context, _ int) (int, int, error) {
		ctx = withToken(ctx, m.agent)
		pt := make([]byte, size)
		_, _ = rand.Read(pt)
		enc, err := tc.Encrypt(ctx, &mcv1.TransitEncryptRequest{Mount: "transit", Key: "bench", Plaintext: pt})
		if err != nil {
			return 0, 0, fmt.Errorf("transit encrypt: %w", err)
		}
		dec, err := tc.Decrypt(ctx, &mcv1.TransitDecryptRequest{Mount: "transit", Key: "bench", Ciphertext: enc.GetCiphertext()})
		if err != nil {
			return 0, 0, fmt.Errorf("transit decrypt: %w", err)
		}
		if !bytes.Equal(dec.GetPlaintext(), pt) {
			return 0, 0, errors.New("transit: decrypted plaintext differs")
		}
		return 1, 0, nil
	}
}

// transitBatch is one EncryptBatch and one DecryptBatch of n payloads over
// gRPC.
func transitBatch(m *metacryptServer, tc mcv1.TransitServiceClient, size, n int) op {
	return func(ctx context.Context, _ int) (int, int, error) {
		ctx = withToken(ctx, m.agent)
		pts := make([][]byte, n)
		items := make([]*mcv1.TransitEncryptItem, n)
		for i := range pts {
			pts[i] = make([]byte, size)
			_, _ = rand.Read(pts[i])
			items[i] = &mcv1.TransitEncryptItem{Plaintext: pts[i]}
		}
		enc, err := tc.EncryptBatch(ctx, &mcv1.TransitEncryptBatchRequest{Mount: "transit", Key: "bench", Items: items})
		if err != nil {
			return 0, 0, fmt.Errorf("transit encrypt batch: %w", err)
		}
		if len(enc.GetResults()) != n {
			return 0, 0, fmt.Errorf("transit encrypt batch: %d results for %d items", len(enc.GetResults()), n)
		}
		dItems := make([]*mcv1.TransitDecryptItem, n)
		for i, r := range enc.GetResults() {
			if r.GetError() != "" {
				return 0, 0, fmt.Errorf("transit encrypt batch item %d: %s", i, r.GetError())
			}
			dItems[i] = &mcv1.TransitDecryptItem{Ciphertext: r.GetCiphertext()}
		}
		dec, err := tc.DecryptBatch(ctx, &mcv1.TransitDecryptBatchRequest{Mount: "transit", Key: "bench", Items: dItems})
		if err != nil {
			return 0, 0, fmt.Errorf("transit decrypt batch: %w", err)
		}
		if len(dec.GetResults()) != n {
			return 0, 0, fmt.Errorf("transit decrypt batch: %d results for %d items", len(dec.GetResults()), n)
		}
		for i, r := range dec.GetResults() {
			if r.GetError() != "" || !bytes.Equal(r.GetPlaintext(), pts[i]) {
				return 0, 0, fmt.Errorf("transit decrypt batch item %d: %q or plaintext differs", i, r.GetError())
			}
		}
		return n, 0, nil
	}
}

// sshKeys are user public keys (authorized_keys lines) to sign.
func sshKeys(n int) ([]string, []ssh.PublicKey, error) {
	lines := make([]string, n)
	keys := make([]ssh.PublicKey, n)
	for i := range n {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		if keys[i], err = ssh.NewPublicKey(pub); err != nil {
			return nil, nil, err
		}
		lines[i] = string(ssh.MarshalAuthorizedKey(keys[i]))
	}
	return lines, keys, nil
}

// sshSign is one user certificate signing over REST.
func sshSign(m *metacryptServer, lines []string) op {
	var seq atomic.Uint64
	return func(ctx context.Context, _ int) (int, int, error) {
		line := lines[(seq.Add(1)-1)%uint64(len(lines))]
		var out struct {
			Certificate string `json:"certificate"`
		}
		if err := m.api.call(ctx, http.MethodPost, "/v1/ssh/ssh/sign/users", m.agent,
			map[string]any{"public_key": line, "principals": []string{"bench"}}, http.StatusOK, &out); err != nil {
			return 0, 0, err
		}
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(out.Certificate))
		if err != nil {
			return 0, 0, fmt.Errorf("ssh certificate: %w", err)
		}
		cert, ok := pk.(*ssh.Certificate)
		if !ok || !slices.Equal(cert.ValidPrincipals, []string{"bench"}) {
			return 0, 0, fmt.Errorf("ssh certificate: %T for %v", pk, cert)
		}
		return 1, 0, nil
	}
}

// rawAESPair is one AES-256-GCM seal and open of a size-byte payload with
// a random nonce: what one transit encrypt+decrypt pair costs at least.
func rawAESPair(size int) (func() error, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	pt := make([]byte, size)
	_, _ = rand.Read(pt)
	nonce := make([]byte, gcm.NonceSize())
	ct := make([]byte, 0, size+gcm.Overhead())
	out := make([]byte, 0, size)
	return func() error {
		if _, err := rand.Read(nonce); err != nil {
			return err
		}
		ct = gcm.Seal(ct[:0], nonce, pt, nil)
		var err error
		out, err = gcm.Open(out[:0], nonce, ct, nil)
		return err
	}, nil
}

// rawSSHSign is one SignCert of a user certificate with an ed25519 CA.
func rawSSHSign(keys []ssh.PublicKey) (func() error, error) {
	_, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(caKey)
	if err != nil {
		return nil, err
	}
	var i int
	return func() error {
		i++
		now := time.Now()
		c := &ssh.Certificate{
			Key: keys[i%len(keys)], Serial: uint64(i), CertType: ssh.UserCert, KeyId: agent, ValidPrincipals: []string{"bench"}, //nolint:gosec // a positive counter
			ValidAfter: uint64(now.Add(-5 * time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()), //nolint:gosec // times after 1970
			Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
		}
		return c.SignCert(rand.Reader, signer)
	}, nil
}

// rawX509 signs a P-256 leaf for a CSR's key with a P-256 issuer (after
// checking the CSR's signature), or, with keygen, for a new P-256 key:
// the signatures every issuance costs at least.
func rawX509(pool *csrPool, keygen bool) (func() error, error) {
	issKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	issTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "raw issuer"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, issTmpl, issTmpl, &issKey.PublicKey, issKey)
	if err != nil {
		return nil, err
	}
	iss, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	var i int64
	return func() error {
		i++
		c := pool.dns[int(i)%len(pool.dns)]
		var pub any
		if keygen {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			pub = &k.PublicKey
		} else {
			csr, err := x509.ParseCertificateRequest(c.der)
			if err != nil {
				return err
			}
			if err := csr.CheckSignature(); err != nil {
				return err
			}
			pub = csr.PublicKey
		}
		now := time.Now()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(i), Subject: pkix.Name{CommonName: c.name}, DNSNames: []string{c.name},
			NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		_, err := x509.CreateCertificate(rand.Reader, tmpl, iss, pub, issKey)
		return err
	}, nil
}

// fsyncLatency is the median time of writing 4 KiB and fdatasync(2) in
// dir: what one durable commit costs at least on this disk.
func fsyncLatency(dir string) (time.Duration, error) {
	f, err := os.Create(filepath.Join(dir, "fsync-probe")) //nolint:gosec // in our temporary directory
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
	buf := make([]byte, 4096)
	var ds []float64
	for i := range 50 {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			return 0, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil { //nolint:gosec // a file descriptor fits an int
			return 0, err
		}
		ds = append(ds, float64(time.Since(start)))
	}
	return time.Duration(benchkit.Median(ds)), nil
}

// results are every figure's samples by server ("local" for the raw
// rates).
type results struct {
	samples map[string]map[string][]sample
	// acmeChallenges counts http-01 fetches the challenge server
	// answered.
	acmeChallenges int64
	sshKeys        int
}

func (r *results) add(fig, server string, s sample) {
	if r.samples[fig] == nil {
		r.samples[fig] = map[string][]sample{}
	}
	r.samples[fig][server] = append(r.samples[fig][server], s)
}

func (r *results) get(fig, server string) []sample { return r.samples[fig][server] }

// bench is one figure of one server.
type bench struct {
	fig, server string
	pids        []int
	workers     int
	fn          op
}

func measureAll(ctx context.Context, o options, mc *metacryptServer, mcias *mciasServer, step *stepServer, pool *csrPool, chal *challengeServer) (*results, error) {
	res := &results{samples: map[string]map[string][]sample{}}
	alive := func() error { return errors.Join(mc.proc.Alive(), mcias.proc.Alive(), step.proc.Alive()) }
	// round measures the benches reps times, the order reversed every
	// other repetition, after an untimed warm-up of each.
	round := func(what string, bs []bench, extra func() error) error {
		for _, b := range bs {
			if _, err := measure(ctx, min(o.duration/5+time.Second, 3*time.Second), b.workers, b.pids, b.fn); err != nil {
				return fmt.Errorf("%s %s warm-up: %w", b.server, b.fig, err)
			}
		}
		for rep := range o.reps {
			order := bs
			if rep%2 == 1 {
				order = slices.Clone(bs)
				slices.Reverse(order)
			}
			for _, b := range order {
				s, err := measure(ctx, o.duration, b.workers, b.pids, b.fn)
				if err != nil {
					return fmt.Errorf("%s %s: %w", b.server, b.fig, err)
				}
				if err := alive(); err != nil {
					return err
				}
				res.add(b.fig, b.server, s)
				logf("%-9s %-13s rep %d: %8.1f /s (server %.2f CPU, client %.2f CPU)", b.server, b.fig, rep+1, s.rate(), s.srvCPU/s.secs, s.cliCPU/s.secs)
			}
			if extra != nil {
				if err := extra(); err != nil {
					return err
				}
			}
		}
		logf("%s done", what)
		return nil
	}
	localRate := func(fig string, fn func() error) error {
		s, err := local(2*time.Second, fn)
		if err != nil {
			return fmt.Errorf("%s: %w", fig, err)
		}
		res.add(fig, "local", s)
		return nil
	}

	if o.figures["issue"] {
		signOnly, err := rawX509(pool, false)
		if err != nil {
			return nil, err
		}
		keySign, err := rawX509(pool, true)
		if err != nil {
			return nil, err
		}
		if err := round("issuance", []bench{
			{figIssueKey, "metacrypt", mc.pids, o.clients, mcIssue(mc)},
			{figIssueCSR, "metacrypt", mc.pids, o.clients, mcSign(mc, pool)},
			{figIssueCSR, "step-ca", step.pids, o.clients, stepSign(step, pool)},
		}, func() error {
			return errors.Join(localRate(rawSign, signOnly), localRate(rawKeySign, keySign))
		}); err != nil {
			return nil, err
		}
	}
	if o.figures["acme"] {
		if err := measureACME(ctx, o, res, round, mc, step, pool, chal); err != nil {
			return nil, err
		}
	}
	if o.figures["transit"] {
		if err := measureTransit(o, round, localRate, mc); err != nil {
			return nil, err
		}
	}
	if o.figures["ssh"] {
		if err := measureSSH(o, res, round, localRate, mc); err != nil {
			return nil, err
		}
	}
	return res, nil
}

type roundFunc func(what string, bs []bench, extra func() error) error

func measureACME(ctx context.Context, o options, res *results, round roundFunc, mc *metacryptServer, step *stepServer, pool *csrPool, chal *challengeServer) error {
	mcACME, err := newACMETarget(ctx, &mc.target, mc.base+"/v1/pki/pki/acme/services/directory", o, metacryptEAB(mc))
	if err != nil {
		return err
	}
	defer mcACME.tr.CloseIdleConnections()
	stepACME, err := newACMETarget(ctx, &step.target, step.base+"/acme/acme/directory", o, nil)
	if err != nil {
		return err
	}
	defer stepACME.tr.CloseIdleConnections()
	for _, mode := range []struct {
		fig  string
		poll time.Duration
	}{{figACMEPoll, o.poll}, {figACMEStd, 0}} {
		if err := round("ACME "+mode.fig, []bench{
			{mode.fig, "metacrypt", mc.pids, o.orders, mcACME.order(chal, pool, mode.poll)},
			{mode.fig, "step-ca", step.pids, o.orders, stepACME.order(chal, pool, mode.poll)},
		}, nil); err != nil {
			return err
		}
	}
	res.acmeChallenges = chal.hits.Load()
	return nil
}

func measureTransit(o options, round roundFunc, localRate func(string, func() error) error, mc *metacryptServer) error {
	conn, err := grpcConn(mc)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	tc := mcv1.NewTransitServiceClient(conn)
	aesPair, err := rawAESPair(o.payload)
	if err != nil {
		return err
	}
	return round("transit", []bench{
		{figTransitREST, "metacrypt", mc.pids, o.clients, transitREST(mc, o.payload)},
		{figTransitGRPC, "metacrypt", mc.pids, o.clients, transitGRPC(mc, tc, o.payload)},
		{figTransitBatch, "metacrypt", mc.pids, o.clients, transitBatch(mc, tc, o.payload, o.batch)},
	}, func() error { return localRate(rawAES, aesPair) })
}

func measureSSH(o options, res *results, round roundFunc, localRate func(string, func() error) error, mc *metacryptServer) error {
	lines, keys, err := sshKeys(256)
	if err != nil {
		return err
	}
	res.sshKeys = len(lines)
	sshRaw, err := rawSSHSign(keys)
	if err != nil {
		return err
	}
	return round("ssh", []bench{
		{figSSH, "metacrypt", mc.pids, o.clients, sshSign(mc, lines)},
	}, func() error { return localRate(rawSSH, sshRaw) })
}
