// Package acmeclient obtains certificates from Metacrypt's ACME server in
// one call: it logs in to MCIAS, gets External Account Binding
// credentials from Metacrypt for that identity, registers an ACME account
// (RFC 8555, through golang.org/x/crypto/acme), orders, answers the
// challenges — http-01 with a listener it runs, dns-01 with a TXT record
// it writes into MCNS and removes afterwards — finalizes with a key it
// generates, and returns the full chain. The MCP agent calls it to give
// services their certificates; the issuance limits of its identity
// decide which names it may have.
//
// Like the other public clients it imports Metacrypt's, MCIAS's and MCNS's
// public clients, never their internals.
package acmeclient

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	mciasclient "git.metacircular.net/metacircular/mcias/client"
	metacrypt "git.metacircular.net/metacircular/metacrypt/client"
)

// Challenge is how the client proves control of the names.
type Challenge string

// The challenges the client answers.
const (
	// HTTP01 serves the key authorization on Config.HTTP01Addr; every
	// name must resolve (for Metacrypt) to this host.
	HTTP01 Challenge = "http-01"
	// DNS01 writes _acme-challenge TXT records into MCNS; the identity
	// must be allowed to manage them there (an MCNS agent account such
	// as mcp-agent).
	DNS01 Challenge = "dns-01"
)

// Config is where the servers are and who the client is.
type Config struct {
	// Directory is the ACME directory URL:
	// https://<metacrypt>/v1/pki/<mount>/acme/<issuer>/directory.
	Directory string
	// CACert is a PEM file of the root that signs Metacrypt's, MCIAS's
	// and MCNS's TLS certificates; empty: the system roots.
	CACert string
	// MCIAS is MCIAS's gRPC address; the client logs in there with
	// Username and Password. Token, when set, is used instead (a system
	// account's token).
	MCIAS              string
	Username, Password string
	Token              string
	// Metacrypt is Metacrypt's gRPC address, where the EAB credentials
	// come from.
	Metacrypt string
	// AccountKey is the ACME account key; nil: a P-256 key is generated
	// and lives as long as the Client. The same key finds its account
	// again without new EAB credentials.
	AccountKey crypto.Signer
	// HTTP01Addr is where the http-01 responder listens (default ":80");
	// Metacrypt connects to each name on its acme.http01_port.
	HTTP01Addr string
	// MCNS is MCNS's gRPC address, for dns-01.
	MCNS string
	// DNSResolvers ("host:port", e.g. MCNS's DNS listener) are asked
	// until they serve a new TXT record before the challenge is answered;
	// empty: no wait.
	DNSResolvers []string
	// PropagationTimeout bounds that wait (default 60s).
	PropagationTimeout time.Duration
	Logger             *slog.Logger
}

// Request is what to obtain.
type Request struct {
	// Names are DNS names (a wildcard needs DNS01) and IP addresses
	// (HTTP01 only).
	Names []string
	// KeyType is the certificate key's type: ec-p256 (default), ec-p384,
	// ed25519, rsa-2048, rsa-3072 or rsa-4096.
	KeyType string
	// Challenge defaults to HTTP01.
	Challenge Challenge
}

// Bundle is an obtained certificate.
type Bundle struct {
	// CertificatePEM is the leaf; ChainPEM the leaf then its issuers
	// (what a server presents); PrivateKeyPEM the key (PKCS#8).
	CertificatePEM string
	ChainPEM       string
	PrivateKeyPEM  string
	// Serial is the leaf's serial in lower-case hex (as metacryptctl
	// shows it).
	Serial              string
	NotBefore, NotAfter time.Time
	Names               []string
	// URL is the certificate's ACME URL.
	URL string
}

// Client obtains certificates; its methods may be called concurrently
// (obtaining is serialized: one http-01 responder at a time).
type Client struct {
	cfg    Config
	mount  string
	acme   *acme.Client
	logger *slog.Logger

	mu         sync.Mutex
	registered bool
}

// New checks the configuration; it connects to nothing yet.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Directory)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("acmeclient: directory %q is not an https URL", cfg.Directory)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 6 || parts[0] != "v1" || parts[1] != "pki" || parts[3] != "acme" || parts[5] != "directory" {
		return nil, fmt.Errorf("acmeclient: directory %q is not /v1/pki/<mount>/acme/<issuer>/directory", cfg.Directory)
	}
	if cfg.Metacrypt == "" {
		return nil, errors.New("acmeclient: Metacrypt (its gRPC address) is required for EAB credentials")
	}
	if cfg.Token == "" && (cfg.MCIAS == "" || cfg.Username == "") {
		return nil, errors.New("acmeclient: a Token, or MCIAS with Username and Password, is required")
	}
	if cfg.HTTP01Addr == "" {
		cfg.HTTP01Addr = ":80"
	}
	if cfg.PropagationTimeout <= 0 {
		cfg.PropagationTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pemBytes, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("acmeclient: read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("acmeclient: %s holds no PEM certificate", cfg.CACert)
		}
		tlsCfg.RootCAs = pool
	}
	key := cfg.AccountKey
	if key == nil {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
	}
	ac := &acme.Client{
		Key: key, DirectoryURL: cfg.Directory, UserAgent: "metacrypt-acmeclient",
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}, Timeout: time.Minute},
	}
	return &Client{cfg: cfg, mount: parts[2], acme: ac, logger: cfg.Logger}, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.acme.HTTPClient.CloseIdleConnections()
	return nil
}

// token is an MCIAS token: Config.Token, or a fresh login.
func (c *Client) token(ctx context.Context) (string, error) {
	if c.cfg.Token != "" {
		return c.cfg.Token, nil
	}
	mc, err := mciasclient.New(c.cfg.MCIAS, c.cfg.CACert, "")
	if err != nil {
		return "", err
	}
	defer func() { _ = mc.Close() }()
	t, err := mc.Login(ctx, mciasclient.LoginRequest{Username: c.cfg.Username, Password: c.cfg.Password, ServiceName: "metacrypt"})
	if err != nil {
		return "", fmt.Errorf("acmeclient: MCIAS login: %w", err)
	}
	return t.Token, nil
}

// register makes sure the account key has an account: the existing one,
// or a new one registered with fresh EAB credentials.
func (c *Client) register(ctx context.Context) error {
	if c.registered {
		return nil
	}
	if _, err := c.acme.GetReg(ctx, ""); err == nil {
		c.registered = true
		return nil
	} else if !errors.Is(err, acme.ErrNoAccount) {
		return fmt.Errorf("acmeclient: look up account: %w", err)
	}
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	mc, err := metacrypt.New(c.cfg.Metacrypt, c.cfg.CACert, tok)
	if err != nil {
		return err
	}
	defer func() { _ = mc.Close() }()
	eab, err := mc.CreateEAB(ctx, c.mount, metacrypt.EABRequest{TTL: 10 * time.Minute})
	if err != nil {
		return fmt.Errorf("acmeclient: EAB credentials: %w", err)
	}
	hmacKey, err := base64.RawURLEncoding.DecodeString(eab.HMACKey)
	if err != nil {
		return fmt.Errorf("acmeclient: EAB key: %w", err)
	}
	_, err = c.acme.Register(ctx, &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: eab.KID, Key: hmacKey}}, acme.AcceptTOS)
	clear(hmacKey)
	if err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return fmt.Errorf("acmeclient: register: %w", err)
	}
	c.registered = true
	c.logger.Info("acmeclient: account registered", "kid", eab.KID, "account", string(c.acme.KID))
	return nil
}

// Obtain gets a certificate for r.Names.
func (c *Client) Obtain(ctx context.Context, r Request) (Bundle, error) {
	if len(r.Names) == 0 {
		return Bundle{}, errors.New("acmeclient: no names")
	}
	if r.Challenge == "" {
		r.Challenge = HTTP01
	}
	if r.Challenge != HTTP01 && r.Challenge != DNS01 {
		return Bundle{}, fmt.Errorf("acmeclient: challenge %q (http-01 or dns-01)", r.Challenge)
	}
	key, err := generateKey(r.KeyType)
	if err != nil {
		return Bundle{}, err
	}
	ids := make([]acme.AuthzID, len(r.Names))
	tmpl := &x509.CertificateRequest{}
	for i, n := range r.Names {
		if a, err := netip.ParseAddr(n); err == nil {
			ids[i] = acme.AuthzID{Type: "ip", Value: a.String()}
			tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
			continue
		}
		ids[i] = acme.AuthzID{Type: "dns", Value: n}
		tmpl.DNSNames = append(tmpl.DNSNames, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.register(ctx); err != nil {
		return Bundle{}, err
	}
	order, err := c.acme.AuthorizeOrder(ctx, ids)
	if err != nil {
		return Bundle{}, fmt.Errorf("acmeclient: new order: %w", err)
	}
	if err := c.authorize(ctx, order, r.Challenge); err != nil {
		return Bundle{}, err
	}
	if _, err := c.acme.WaitOrder(ctx, order.URI); err != nil {
		return Bundle{}, fmt.Errorf("acmeclient: order: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return Bundle{}, err
	}
	ders, certURL, err := c.acme.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return Bundle{}, fmt.Errorf("acmeclient: finalize: %w", err)
	}
	return bundle(ders, certURL, key)
}

// authorize answers every pending authorization of the order.
func (c *Client) authorize(ctx context.Context, order *acme.Order, kind Challenge) error {
	var responder *http01Responder
	defer func() {
		if responder != nil {
			responder.close()
		}
	}()
	for _, u := range order.AuthzURLs {
		z, err := c.acme.GetAuthorization(ctx, u)
		if err != nil {
			return fmt.Errorf("acmeclient: authorization: %w", err)
		}
		if z.Status == acme.StatusValid {
			continue
		}
		var chal *acme.Challenge
		for _, ch := range z.Challenges {
			if ch.Type == string(kind) {
				chal = ch
			}
		}
		if chal == nil {
			return fmt.Errorf("acmeclient: %s is not offered for %s", kind, z.Identifier.Value)
		}
		var cleanup func()
		switch kind {
		case HTTP01:
			if responder == nil {
				if responder, err = startHTTP01(c.cfg.HTTP01Addr); err != nil {
					return err
				}
			}
			resp, err := c.acme.HTTP01ChallengeResponse(chal.Token)
			if err != nil {
				return err
			}
			responder.set(chal.Token, resp)
		case DNS01:
			value, err := c.acme.DNS01ChallengeRecord(chal.Token)
			if err != nil {
				return err
			}
			if cleanup, err = c.presentDNS(ctx, z.Identifier.Value, value); err != nil {
				return err
			}
		}
		err = c.accept(ctx, z.URI, chal)
		if cleanup != nil {
			cleanup()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) accept(ctx context.Context, authzURL string, chal *acme.Challenge) error {
	if _, err := c.acme.Accept(ctx, chal); err != nil {
		return fmt.Errorf("acmeclient: accept %s: %w", chal.Type, err)
	}
	if _, err := c.acme.WaitAuthorization(ctx, authzURL); err != nil {
		return fmt.Errorf("acmeclient: %s validation: %w", chal.Type, err)
	}
	return nil
}

// Revoke revokes a certificate the account obtained (the first
// certificate of certPEM).
func (c *Client) Revoke(ctx context.Context, certPEM string) error {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("acmeclient: no PEM certificate to revoke")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.register(ctx); err != nil {
		return err
	}
	if err := c.acme.RevokeCert(ctx, nil, block.Bytes, acme.CRLReasonUnspecified); err != nil {
		return fmt.Errorf("acmeclient: revoke: %w", err)
	}
	return nil
}

// generateKey makes a certificate key of a Metacrypt key type.
func generateKey(kt string) (crypto.Signer, error) {
	switch kt {
	case "", "ec-p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ec-p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "rsa-2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "rsa-4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("acmeclient: key type %q (ec-p256, ec-p384, ed25519, rsa-2048, rsa-3072, rsa-4096)", kt)
}

func bundle(ders [][]byte, certURL string, key crypto.Signer) (Bundle, error) {
	if len(ders) == 0 {
		return Bundle{}, errors.New("acmeclient: the server sent no certificate")
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return Bundle{}, fmt.Errorf("acmeclient: certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Bundle{}, err
	}
	var chain strings.Builder
	for _, d := range ders {
		chain.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d}))
	}
	b := Bundle{
		CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ders[0]})),
		ChainPEM:       chain.String(),
		PrivateKeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		Serial:         leaf.SerialNumber.Text(16),
		NotBefore:      leaf.NotBefore, NotAfter: leaf.NotAfter,
		Names: append([]string{}, leaf.DNSNames...), URL: certURL,
	}
	for _, ip := range leaf.IPAddresses {
		b.Names = append(b.Names, ip.String())
	}
	clear(pkcs8)
	return b, nil
}

// http01Responder serves key authorizations under
// /.well-known/acme-challenge/.
type http01Responder struct {
	srv *http.Server
	ln  net.Listener

	mu     sync.Mutex
	tokens map[string]string
}

func startHTTP01(addr string) (*http01Responder, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("acmeclient: http-01 listener: %w", err)
	}
	r := &http01Responder{ln: ln, tokens: map[string]string{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *http01Responder) set(token, keyAuth string) {
	r.mu.Lock()
	r.tokens[token] = keyAuth
	r.mu.Unlock()
}

func (r *http01Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	token, ok := strings.CutPrefix(req.URL.Path, "/.well-known/acme-challenge/")
	r.mu.Lock()
	keyAuth, found := r.tokens[token]
	r.mu.Unlock()
	if !ok || !found || req.Method != http.MethodGet {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write([]byte(keyAuth))
}

func (r *http01Responder) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}
