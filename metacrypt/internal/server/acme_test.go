package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	mcnsclient "git.metacircular.net/metacircular/mcns/client"
	"git.metacircular.net/metacircular/metacrypt/client"
	acmesvc "git.metacircular.net/metacircular/metacrypt/internal/acme"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws/jwstest"
)

// TestACMEDirectoryNonceAndSealed: the directory and nonces of an issuer's
// ACME server, 404 for an unknown issuer, and a sealed Metacrypt: the
// directory still answers, everything else is 503 serverInternal with
// Retry-After.
func TestACMEDirectoryNonceAndSealed(t *testing.T) {
	e := startACME(t, "")
	r := do(t, http.MethodGet, e.directory, "", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("directory: %d %s", r.status, r.body)
	}
	var dir map[string]any
	if err := json.Unmarshal(r.body, &dir); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"newNonce": "new-nonce", "newAccount": "new-account", "newOrder": "new-order", "revokeCert": "revoke-cert",
		"keyChange": "key-change", "renewalInfo": "renewal-info",
	} {
		if dir[k] != e.url(want) {
			t.Errorf("directory %s = %v, want %s", k, dir[k], e.url(want))
		}
	}
	if meta, _ := dir["meta"].(map[string]any); meta["externalAccountRequired"] != true {
		t.Errorf("meta %v: want externalAccountRequired", dir["meta"])
	}
	get := do(t, http.MethodGet, e.url("new-nonce"), "", nil)
	if get.status != http.StatusNoContent || get.header.Get("Replay-Nonce") == "" || get.header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(get.header.Get("Link"), `rel="index"`) {
		t.Fatalf("GET new-nonce: %d %v", get.status, get.header)
	}
	if a, b := e.nonce(t), e.nonce(t); a == b {
		t.Fatal("two nonces are the same")
	}
	do(t, http.MethodGet, e.rest+"/v1/pki/pki/acme/nosuch/directory", "", nil).wantProblem(t, "malformed", http.StatusNotFound)
	do(t, http.MethodGet, e.rest+"/v1/pki/nosuch/acme/services/directory", "", nil).wantProblem(t, "malformed", http.StatusNotFound)

	if _, err := e.client(t, admin).Seal(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := do(t, http.MethodGet, e.directory, "", nil); r.status != http.StatusOK {
		t.Fatalf("sealed directory: %d %s", r.status, r.body)
	}
	sealed := do(t, http.MethodHead, e.url("new-nonce"), "", nil)
	if sealed.status != http.StatusServiceUnavailable || sealed.header.Get("Retry-After") == "" {
		t.Fatalf("sealed new-nonce: %d %v", sealed.status, sealed.header)
	}
	key := newKey(t)
	p := e.post(t, e.url("new-order"), jwstest.Sign(key, jwstest.Header{Nonce: "x", URL: e.url("new-order"), KID: e.url("account/x")}, []byte(`{}`))).
		wantProblem(t, "serverInternal", http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "sealed") {
		t.Fatalf("sealed detail %q", p.Detail)
	}
	if r := do(t, http.MethodGet, e.url("renewal-info/AAAA.AAAA"), "", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("sealed renewal-info: %d", r.status)
	}
}

// TestACMEJWSRules sends requests no good client sends: each is refused
// with its RFC 8555 problem type.
func TestACMEJWSRules(t *testing.T) {
	e := startACME(t, "")
	key := newKey(t)
	jwk := jwstest.PublicJWK(key.Public())
	acct := e.rawAccount(t, key)
	orderURL := e.url("new-order")
	newOrder := []byte(`{"identifiers":[{"type":"dns","value":"jws.svc.mcp.test"}]}`)
	sign := func(h jwstest.Header, payload []byte) []byte { return jwstest.Sign(key, h, payload) }

	t.Run("good request works", func(t *testing.T) {
		r := e.post(t, orderURL, sign(jwstest.Header{Nonce: e.nonce(t), URL: orderURL, KID: acct}, newOrder))
		if r.status != http.StatusCreated || r.header.Get("Location") == "" || r.header.Get("Replay-Nonce") == "" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("unknown nonce", func(t *testing.T) {
		r := e.post(t, orderURL, sign(jwstest.Header{Nonce: "AAAAAAAAAAAAAAAAnot-a-nonce-we-made-xx", URL: orderURL, KID: acct}, newOrder))
		r.wantProblem(t, "badNonce", http.StatusBadRequest)
		if r.header.Get("Replay-Nonce") == "" {
			t.Fatal("a badNonce answer without a fresh nonce")
		}
	})
	t.Run("replayed nonce", func(t *testing.T) {
		n := e.nonce(t)
		if r := e.post(t, orderURL, sign(jwstest.Header{Nonce: n, URL: orderURL, KID: acct}, newOrder)); r.status != http.StatusCreated {
			t.Fatalf("first use: %d %s", r.status, r.body)
		}
		e.post(t, orderURL, sign(jwstest.Header{Nonce: n, URL: orderURL, KID: acct}, newOrder)).wantProblem(t, "badNonce", http.StatusBadRequest)
	})
	t.Run("wrong url", func(t *testing.T) {
		e.post(t, orderURL, sign(jwstest.Header{Nonce: e.nonce(t), URL: e.url("new-account"), KID: acct}, newOrder)).
			wantProblem(t, "unauthorized", http.StatusForbidden)
	})
	t.Run("both jwk and kid", func(t *testing.T) {
		e.post(t, orderURL, sign(jwstest.Header{Nonce: e.nonce(t), URL: orderURL, KID: acct, JWK: jwk}, newOrder)).
			wantProblem(t, "malformed", http.StatusBadRequest)
	})
	t.Run("jwk where a kid is needed", func(t *testing.T) {
		e.post(t, orderURL, sign(jwstest.Header{Nonce: e.nonce(t), URL: orderURL, JWK: jwk}, newOrder)).
			wantProblem(t, "malformed", http.StatusBadRequest)
	})
	t.Run("kid on new-account", func(t *testing.T) {
		u := e.url("new-account")
		e.post(t, u, sign(jwstest.Header{Nonce: e.nonce(t), URL: u, KID: acct}, []byte(`{}`))).wantProblem(t, "malformed", http.StatusBadRequest)
	})
	t.Run("unknown account", func(t *testing.T) {
		e.post(t, orderURL, sign(jwstest.Header{Nonce: e.nonce(t), URL: orderURL, KID: e.url("account/nosuchaccount")}, newOrder)).
			wantProblem(t, "accountDoesNotExist", http.StatusBadRequest)
	})
	t.Run("kid of another directory", func(t *testing.T) {
		other := strings.Replace(acct, "/acme/services/", "/acme/infra/", 1)
		e.post(t, orderURL, sign(jwstest.Header{Nonce: e.nonce(t), URL: orderURL, KID: other}, newOrder)).
			wantProblem(t, "accountDoesNotExist", http.StatusBadRequest)
	})
	t.Run("kid signed by another key", func(t *testing.T) {
		other := newKey(t)
		e.post(t, orderURL, jwstest.Sign(other, jwstest.Header{Nonce: e.nonce(t), URL: orderURL, KID: acct}, newOrder)).
			wantProblem(t, "malformed", http.StatusBadRequest)
	})
	t.Run("MAC algorithm", func(t *testing.T) {
		p := e.post(t, orderURL, sign(jwstest.Header{Alg: "HS256", Nonce: e.nonce(t), URL: orderURL, KID: acct}, newOrder)).
			wantProblem(t, "badSignatureAlgorithm", http.StatusBadRequest)
		if len(p.Algorithms) == 0 {
			t.Fatal("badSignatureAlgorithm without algorithms")
		}
	})
	t.Run("wrong content type", func(t *testing.T) {
		r := do(t, http.MethodPost, orderURL, "application/json", sign(jwstest.Header{Nonce: e.nonce(t), URL: orderURL, KID: acct}, newOrder))
		r.wantProblem(t, "malformed", http.StatusUnsupportedMediaType)
	})
	t.Run("not a JWS", func(t *testing.T) {
		e.post(t, orderURL, []byte(`{"protected":"x"}`)).wantProblem(t, "malformed", http.StatusBadRequest)
	})
	t.Run("payload on a POST-as-GET resource", func(t *testing.T) {
		u := acct + "/orders"
		e.post(t, u, sign(jwstest.Header{Nonce: e.nonce(t), URL: u, KID: acct}, []byte(`{}`))).wantProblem(t, "malformed", http.StatusBadRequest)
		r := e.post(t, u, sign(jwstest.Header{Nonce: e.nonce(t), URL: u, KID: acct}, nil))
		var list struct{ Orders []string }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &list) != nil || len(list.Orders) != 2 {
			t.Fatalf("orders: %d %s", r.status, r.body)
		}
	})
	t.Run("another account's URL", func(t *testing.T) {
		otherKey := newKey(t)
		other := e.rawAccount(t, otherKey)
		e.post(t, other, sign(jwstest.Header{Nonce: e.nonce(t), URL: other, KID: acct}, nil)).wantProblem(t, "unauthorized", http.StatusForbidden)
	})
}

// TestACMENewAccountEAB: registration needs External Account Binding
// credentials, used once, over the account key, for the newAccount URL;
// ES256, ES384, RS256 and EdDSA account keys all register.
func TestACMENewAccountEAB(t *testing.T) {
	e := startACME(t, "")
	u := e.url("new-account")
	reg := func(key crypto.Signer, eab json.RawMessage, extra map[string]any) rawResponse {
		p := map[string]any{"termsOfServiceAgreed": true}
		if eab != nil {
			p["externalAccountBinding"] = eab
		}
		for k, v := range extra {
			p[k] = v
		}
		b, _ := json.Marshal(p)
		return e.post(t, u, jwstest.Sign(key, jwstest.Header{Nonce: e.nonce(t), URL: u, JWK: jwstest.PublicJWK(key.Public())}, b))
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]crypto.Signer{"ES256": newKey(t), "ES384": p384, "RS256": rsaKey, "EdDSA": edKey} {
		t.Run(name, func(t *testing.T) {
			k := e.eab(t, agent)
			r := reg(key, jwstest.EAB(k.KID, eabKey(t, k), u, key.Public()), map[string]any{"contact": []string{"mailto:ops@example.net"}})
			if r.status != http.StatusCreated || !strings.HasPrefix(r.header.Get("Location"), e.url("account/")) {
				t.Fatalf("%d %s", r.status, r.body)
			}
			// The same key again: the same account, 200, no credentials needed.
			again := reg(key, nil, nil)
			if again.status != http.StatusOK || again.header.Get("Location") != r.header.Get("Location") {
				t.Fatalf("existing account: %d %s", again.status, again.body)
			}
		})
	}
	key := newKey(t)
	t.Run("no EAB", func(t *testing.T) {
		reg(key, nil, nil).wantProblem(t, "externalAccountRequired", http.StatusUnauthorized)
	})
	t.Run("only return existing", func(t *testing.T) {
		reg(key, nil, map[string]any{"onlyReturnExisting": true}).wantProblem(t, "accountDoesNotExist", http.StatusBadRequest)
	})
	k := e.eab(t, agent)
	t.Run("wrong MAC key", func(t *testing.T) {
		reg(key, jwstest.EAB(k.KID, []byte("not the key, but 32 bytes long!!"), u, key.Public()), nil).wantProblem(t, "unauthorized", http.StatusForbidden)
	})
	t.Run("EAB over another key", func(t *testing.T) {
		reg(key, jwstest.EAB(k.KID, eabKey(t, k), u, newKey(t).Public()), nil).wantProblem(t, "malformed", http.StatusBadRequest)
	})
	t.Run("EAB for another url", func(t *testing.T) {
		reg(key, jwstest.EAB(k.KID, eabKey(t, k), e.url("new-order"), key.Public()), nil).wantProblem(t, "malformed", http.StatusBadRequest)
	})
	t.Run("unknown kid", func(t *testing.T) {
		reg(key, jwstest.EAB("nosuchkid", eabKey(t, k), u, key.Public()), nil).wantProblem(t, "unauthorized", http.StatusForbidden)
	})
	t.Run("bad contact", func(t *testing.T) {
		reg(key, jwstest.EAB(k.KID, eabKey(t, k), u, key.Public()), map[string]any{"contact": []string{"tel:+1555"}}).
			wantProblem(t, "unsupportedContact", http.StatusBadRequest)
	})
	t.Run("EAB reuse", func(t *testing.T) {
		if r := reg(key, jwstest.EAB(k.KID, eabKey(t, k), u, key.Public()), nil); r.status != http.StatusCreated {
			t.Fatalf("first use: %d %s", r.status, r.body)
		}
		other := newKey(t)
		p := reg(other, jwstest.EAB(k.KID, eabKey(t, k), u, other.Public()), nil).wantProblem(t, "unauthorized", http.StatusForbidden)
		if !strings.Contains(p.Detail, "used") {
			t.Fatalf("detail %q", p.Detail)
		}
	})
}

// countingTransport poisons the first nonce the client receives and
// counts the badNonce answers it then gets.
type countingTransport struct {
	base     http.RoundTripper
	poisoned atomic.Bool
	badNonce atomic.Int32
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(resp.Header.Get("Content-Type"), "problem") {
		c.badNonce.Add(1)
	}
	if n := resp.Header.Get("Replay-Nonce"); n != "" && c.poisoned.CompareAndSwap(false, true) {
		resp.Header.Set("Replay-Nonce", "AAAAAAAAAAAAAAAA"+strings.Repeat("x", 22))
	}
	return resp, nil
}

// TestACMEBadNonceRetry: a client that sends a stale nonce gets badNonce
// with a fresh nonce and succeeds on retry (x/crypto/acme retries).
func TestACMEBadNonceRetry(t *testing.T) {
	e := startACME(t, "")
	tr := &countingTransport{base: httpClient().Transport}
	ac := &acme.Client{Key: newKey(t), DirectoryURL: e.directory, HTTPClient: &http.Client{Transport: tr}}
	k := e.eab(t, agent)
	if _, err := ac.Register(t.Context(), &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: k.KID, Key: eabKey(t, k)}}, acme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	if tr.badNonce.Load() != 1 {
		t.Fatalf("%d badNonce answers, want 1 (the poisoned nonce)", tr.badNonce.Load())
	}
}

// TestACMEPolicyMatrix: an account bound to mcp-agent (limited to
// *.svc.<D> and 10.0.0.0/8, 127.0.0.1) cannot order names outside its
// limits, a refused name fails at newOrder, a policy change after
// authorization fails at finalize (the CA checks again), and a CSR whose
// names differ from the order is badCSR.
func TestACMEPolicyMatrix(t *testing.T) {
	e := startACME(t, "")
	ctx := t.Context()
	ac := e.register(t, agent)
	for _, id := range []acme.AuthzID{
		{Type: "dns", Value: "svc." + domain},
		{Type: "dns", Value: "a.b.svc." + domain},
		{Type: "dns", Value: "x.svc." + domain + ".evil.net"},
		{Type: "dns", Value: "*.svc." + domain},
		{Type: "ip", Value: "192.0.2.7"},
		{Type: "dns", Value: "192.0.2.7"},
	} {
		t.Run(id.Value, func(t *testing.T) {
			_, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: svcName("ok")}, id})
			var ae *acme.Error
			if !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:rejectedIdentifier" {
				t.Fatalf("order with %s: %v, want rejectedIdentifier", id.Value, err)
			}
		})
	}

	resp := e.serveHTTP01(t)
	name := svcName("policy")
	o, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: name}, {Type: "ip", Value: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	e.authorizeHTTP01(t, ac, resp, o)
	csr, _ := csrFor(t, name, "other.svc."+domain)
	if _, _, err := ac.CreateOrderCert(ctx, o.FinalizeURL, csr, true); !isProblem(err, "badCSR") {
		t.Fatalf("CSR with another name: %v", err)
	}
	csr, _ = csrFor(t, name)
	if _, _, err := ac.CreateOrderCert(ctx, o.FinalizeURL, csr, true); !isProblem(err, "badCSR") {
		t.Fatalf("CSR lacking a name: %v", err)
	}
	// The order stays ready after a bad CSR; now the policy changes.
	lim, err := e.client(t, admin).CreateLimit(ctx, client.Limit{Priority: 1, Effect: "deny", Subject: client.Subject{Accounts: []string{agent}}, Names: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ = csrFor(t, name, "127.0.0.1")
	if _, _, err := ac.CreateOrderCert(ctx, o.FinalizeURL, csr, true); !isProblem(err, "unauthorized") {
		t.Fatalf("finalize after the limit changed: %v", err)
	}
	if got, err := ac.GetOrder(ctx, o.URI); err != nil || got.Status != acme.StatusInvalid || got.Error == nil {
		t.Fatalf("order after refusal: %+v %v", got, err)
	}
	if err := e.client(t, admin).DeleteLimit(ctx, lim.ID); err != nil {
		t.Fatal(err)
	}
	// With the deny gone, a new order for the same names is issued.
	o, err = ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: name}, {Type: "ip", Value: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	e.authorizeHTTP01(t, ac, resp, o)
	ders, _, err := ac.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(ders) != 2 || leaf.DNSNames[0] != name || !leaf.IPAddresses[0].Equal([]byte{127, 0, 0, 1}) {
		t.Fatalf("chain of %d, names %v %v", len(ders), leaf.DNSNames, leaf.IPAddresses)
	}
	// The CA recorded the EAB identity as the requester.
	cert, err := e.client(t, admin).Certificate(ctx, "pki", leaf.SerialNumber.Text(16))
	if err != nil || cert.RequestedBy != agent {
		t.Fatalf("record %+v %v", cert, err)
	}
}

func isProblem(err error, typ string) bool {
	var ae *acme.Error
	return errors.As(err, &ae) && ae.ProblemType == "urn:ietf:params:acme:error:"+typ
}

// TestACMEEABCredentials: EAB credentials over gRPC and REST: bound to
// the caller, admins for another identity only, listed without keys, and
// revoking used credentials deactivates their account.
func TestACMEEABCredentials(t *testing.T) {
	e := startACME(t, "")
	ctx := t.Context()
	own, err := e.client(t, alice).CreateEAB(ctx, "pki", client.EABRequest{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if own.Account != alice || own.AccountType != "human" || own.Status != "usable" || own.HMACKey == "" || own.ExpiresAt.IsZero() {
		t.Fatalf("own credentials %+v", own)
	}
	if _, err := e.client(t, alice).CreateEAB(ctx, "pki", client.EABRequest{Account: agent}); client.KindOf(err).String() != "denied" {
		t.Fatalf("alice for mcp-agent: %v", err)
	}
	if _, err := e.client(t, "").CreateEAB(ctx, "pki", client.EABRequest{}); err == nil {
		t.Fatal("created without a token")
	}
	// REST, generated from the proto.
	var created struct {
		EAB struct {
			Kid     string `json:"kid"`
			Account string `json:"account"`
		} `json:"eab"`
		HMACKey string `json:"hmac_key"`
	}
	if err := e.restClient(t, admin).Do(ctx, http.MethodPost, "/v1/pki/pki/eab", map[string]any{"account": agent, "ttl": "1h"}, &created); err != nil {
		t.Fatal(err)
	}
	if created.HMACKey == "" || created.EAB.Account != agent || created.EAB.Kid == "" {
		t.Fatalf("REST create: %+v", created)
	}
	var listed struct {
		EABs []map[string]any `json:"eabs"`
	}
	if err := e.restClient(t, alice).Do(ctx, http.MethodGet, "/v1/pki/pki/eab", nil, &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.EABs) != 1 || listed.EABs[0]["kid"] != own.KID {
		t.Fatalf("alice sees %v", listed.EABs)
	}
	for _, e := range listed.EABs {
		if _, ok := e["hmac_key"]; ok {
			t.Fatal("a listing shows a key")
		}
	}
	all, err := e.client(t, admin).EABs(ctx, "pki", "")
	if err != nil || len(all) != 2 {
		t.Fatalf("admin lists %d: %v", len(all), err)
	}
	agents := all[0]
	if agents.Account != agent {
		agents = all[1]
	}
	if _, err := e.client(t, alice).RevokeEAB(ctx, "pki", agents.KID); client.KindOf(err).String() != "not found" {
		t.Fatalf("alice revokes another's: %v", err)
	}

	// A used credential's revocation deactivates the account.
	ac := e.register(t, agent)
	if _, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: svcName("eab")}}); err != nil {
		t.Fatal(err)
	}
	used, err := e.client(t, admin).EABs(ctx, "pki", agent)
	if err != nil {
		t.Fatal(err)
	}
	var kid string
	for _, u := range used {
		if u.Status == "used" {
			kid = u.KID
		}
	}
	if kid == "" {
		t.Fatalf("no used credentials among %+v", used)
	}
	var revoked struct {
		Status string `json:"status"`
	}
	if err := e.restClient(t, admin).Do(ctx, http.MethodDelete, "/v1/pki/pki/eab/"+kid, nil, &revoked); err != nil || revoked.Status != "revoked" {
		t.Fatalf("REST revoke: %+v %v", revoked, err)
	}
	if _, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: svcName("eab")}}); !isProblem(err, "unauthorized") {
		t.Fatalf("order after revocation: %v", err)
	}
}

// TestACMEValidationQueueSurvivesRestart: a challenge answered while its
// responder is down is retried from the persisted queue, across a restart
// (which seals Metacrypt until it is unsealed again).
func TestACMEValidationQueueSurvivesRestart(t *testing.T) {
	e := startACME(t, `validation_attempts = 20`)
	ctx := t.Context()
	ac := e.register(t, agent)
	o, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: svcName("queue")}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := ac.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	var ch *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "http-01" {
			ch = c
		}
	}
	if ch, err = ac.Accept(ctx, ch); err != nil || ch.Status != acme.StatusProcessing {
		t.Fatalf("accept: %+v %v", ch, err)
	}
	// Nothing listens: attempts fail and are queued again.
	waitFor(t, 10*time.Second, "a failed attempt", func() bool {
		c, err := ac.GetChallenge(ctx, ch.URI)
		return err == nil && c.Error != nil && c.Status == acme.StatusProcessing
	})
	oldREST := e.rest
	e.restart(t)
	if _, err := e.client(t, "").Unseal(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	// The restarted server listens on new ports, so its URLs moved.
	e.directory = strings.Replace(e.directory, oldREST, e.rest, 1)
	authzURL := strings.Replace(o.AuthzURLs[0], oldREST, e.rest, 1)
	ka, err := ac.HTTP01ChallengeResponse(ch.Token)
	if err != nil {
		t.Fatal(err)
	}
	e.serveHTTP01(t).set(ch.Token, ka)
	ac = e.acmeClient(ac.Key)
	if _, err := ac.GetReg(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if z, err = ac.WaitAuthorization(waitCtx, authzURL); err != nil || z.Status != acme.StatusValid {
		t.Fatalf("after restart: %+v %v\n%s", z, err, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "challenge attempt failed, will retry") {
		t.Fatal("no retry was logged")
	}
}

// TestChallengeAnswerWaitsForFirstAttempt: the challenge POST's answer
// carries the first attempt's outcome when the target answers at once
// (valid, and the authorization valid on the first read, no Retry-After
// wait), and says processing, with Retry-After, when it does not within
// acme.RespondWait.
func TestChallengeAnswerWaitsForFirstAttempt(t *testing.T) {
	e := startACME(t, `validation_attempts = 3`)
	ctx := t.Context()
	ac := e.register(t, agent)
	resp := e.serveHTTP01(t)
	accept := func(name string) (*acme.Challenge, string) {
		t.Helper()
		o, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: svcName(name)}})
		if err != nil {
			t.Fatal(err)
		}
		z, err := ac.GetAuthorization(ctx, o.AuthzURLs[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range z.Challenges {
			if c.Type != "http-01" {
				continue
			}
			ka, err := ac.HTTP01ChallengeResponse(c.Token)
			if err != nil {
				t.Fatal(err)
			}
			resp.set(c.Token, ka)
			ch, err := ac.Accept(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			return ch, o.AuthzURLs[0]
		}
		t.Fatal("no http-01 challenge")
		return nil, ""
	}
	ch, authzURL := accept("fast")
	if ch.Status != acme.StatusValid {
		t.Fatalf("challenge answer for a target that answers at once: %+v", ch)
	}
	if z, err := ac.GetAuthorization(ctx, authzURL); err != nil || z.Status != acme.StatusValid {
		t.Fatalf("first authorization read: %+v %v", z, err)
	}
	resp.delay.Store(int64(acmesvc.RespondWait + time.Second))
	start := time.Now()
	ch, authzURL = accept("slow")
	if ch.Status != acme.StatusProcessing || time.Since(start) < acmesvc.RespondWait {
		t.Fatalf("slow target: %+v after %s", ch, time.Since(start))
	}
	if z, err := ac.WaitAuthorization(ctx, authzURL); err != nil || z.Status != acme.StatusValid {
		t.Fatalf("slow target, after waiting: %+v %v", z, err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("no %s after %s", what, d)
}

// TestACMEChallengeFailureInvalidates: a wrong http-01 answer makes the
// challenge, the authorization and the order invalid after the bounded
// attempts, with the problem in the challenge.
func TestACMEChallengeFailureInvalidates(t *testing.T) {
	e := startACME(t, `validation_attempts = 2`)
	ctx := t.Context()
	ac := e.register(t, agent)
	resp := e.serveHTTP01(t)
	o, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: svcName("wrong")}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := ac.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range z.Challenges {
		if c.Type == "http-01" {
			resp.set(c.Token, "not-the-key-authorization")
			if _, err := ac.Accept(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err = ac.WaitAuthorization(ctx, o.AuthzURLs[0])
	var ae *acme.AuthorizationError
	if !errors.As(err, &ae) || len(ae.Errors) == 0 || !strings.Contains(ae.Errors[0].Error(), "incorrectResponse") {
		t.Fatalf("wrong answer: %v", err)
	}
	if _, err := ac.WaitOrder(ctx, o.URI); err == nil {
		t.Fatal("the order is not invalid")
	}
}

// TestACMETLSALPNAndDNS01: tls-alpn-01 (RFC 8737) against a responder
// made with x/crypto/acme, and dns-01 through a TXT record in the real
// MCNS the validator resolves through ([acme] resolvers), for a wildcard.
func TestACMETLSALPNAndDNS01(t *testing.T) {
	e := startACME(t, "")
	ctx := t.Context()
	ac := e.register(t, agent)
	name := svcName("alpn")
	o, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: name}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := ac.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range z.Challenges {
		if c.Type != "tls-alpn-01" {
			continue
		}
		cert, err := ac.TLSALPN01ChallengeCert(c.Token, name)
		if err != nil {
			t.Fatal(err)
		}
		e.serveTLSALPN(t, cert)
		if _, err := ac.Accept(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err = ac.WaitAuthorization(ctx, o.AuthzURLs[0]); err != nil {
		t.Fatalf("tls-alpn-01: %v", err)
	}

	// dns-01 for a wildcard: only dns-01 is offered.
	if _, err := e.client(t, admin).CreateLimit(ctx, client.Limit{Priority: 9, Effect: "allow", Subject: client.Subject{Accounts: []string{agent}},
		Names: []string{"*.wild.svc." + domain}, Wildcards: true}); err != nil {
		t.Fatal(err)
	}
	o, err = ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: "*.wild.svc." + domain}})
	if err != nil {
		t.Fatal(err)
	}
	z, err = ac.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(z.Challenges) != 1 || z.Challenges[0].Type != "dns-01" || !z.Wildcard || z.Identifier.Value != "wild.svc."+domain {
		t.Fatalf("wildcard authorization %+v", z)
	}
	value, err := ac.DNS01ChallengeRecord(z.Challenges[0].Token)
	if err != nil {
		t.Fatal(err)
	}
	mc := mcnsClient(t, agent)
	rec, err := mc.CreateRecord(ctx, mcnsZone, mcnsclient.RecordFields{Name: "_acme-challenge.wild", Type: "TXT", TTL: 5, Value: value})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Accept(ctx, z.Challenges[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.WaitAuthorization(ctx, o.AuthzURLs[0]); err != nil {
		t.Fatalf("dns-01: %v", err)
	}
	if err := mc.DeleteRecord(ctx, mcnsZone, rec.ID); err != nil {
		t.Fatal(err)
	}
	csr, _ := csrFor(t, "*.wild.svc."+domain)
	ders, _, err := ac.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _ := x509.ParseCertificate(ders[0]); leaf == nil || leaf.DNSNames[0] != "*.wild.svc."+domain {
		t.Fatal("no wildcard certificate")
	}
}

// TestACMEAccountLifecycle: key change, renewal information and an order
// replacing a certificate (RFC 9773), revocation by the certificate's own
// key and by the account, and account deactivation.
func TestACMEAccountLifecycle(t *testing.T) {
	e := startACME(t, "")
	ctx := t.Context()
	ac := e.register(t, agent)
	resp := e.serveHTTP01(t)
	certKeys := map[string]crypto.Signer{}
	issue := func(label string) *x509.Certificate {
		t.Helper()
		o, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: svcName(label)}})
		if err != nil {
			t.Fatal(err)
		}
		e.authorizeHTTP01(t, ac, resp, o)
		csr, key := csrFor(t, svcName(label))
		ders, _, err := ac.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(ders[0])
		certKeys[leaf.SerialNumber.String()] = key
		return leaf
	}

	// Key change: the old key stops working, the new one keeps the account.
	oldKey, rolled := ac.Key, newKey(t)
	if err := ac.AccountKeyRollover(ctx, rolled); err != nil {
		t.Fatal(err)
	}
	old := e.acmeClient(oldKey)
	if _, err := old.GetReg(ctx, ""); !errors.Is(err, acme.ErrNoAccount) {
		t.Fatalf("old key after rollover: %v", err)
	}
	leaf := issue("life")

	// Renewal information for it, then an order that replaces it.
	serialDER, err := asn1.Marshal(leaf.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 9773 §4.1: the serial's DER INTEGER without tag and length.
	certID := base64.RawURLEncoding.EncodeToString(leaf.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(serialDER[2:])
	r := do(t, http.MethodGet, e.url("renewal-info/"+certID), "", nil)
	var ri struct {
		SuggestedWindow struct{ Start, End time.Time } `json:"suggestedWindow"`
	}
	if r.status != http.StatusOK || r.header.Get("Retry-After") == "" || json.Unmarshal(r.body, &ri) != nil {
		t.Fatalf("renewal-info: %d %s", r.status, r.body)
	}
	if !ri.SuggestedWindow.Start.After(leaf.NotBefore) || !ri.SuggestedWindow.End.Before(leaf.NotAfter) || !ri.SuggestedWindow.Start.Before(ri.SuggestedWindow.End) {
		t.Fatalf("window %+v for %s..%s", ri.SuggestedWindow, leaf.NotBefore, leaf.NotAfter)
	}
	replacing := func() rawResponse {
		payload, _ := json.Marshal(map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": svcName("life")}}, "replaces": certID})
		return e.post(t, e.url("new-order"), jwstest.Sign(rolled, jwstest.Header{Nonce: e.nonce(t), URL: e.url("new-order"), KID: string(ac.KID)}, payload))
	}
	r = replacing()
	var ord struct {
		Replaces       string   `json:"replaces"`
		Authorizations []string `json:"authorizations"`
		Finalize       string   `json:"finalize"`
	}
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &ord) != nil || ord.Replaces != certID {
		t.Fatalf("replacing order: %d %s", r.status, r.body)
	}
	o, err := ac.GetOrder(ctx, r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	e.authorizeHTTP01(t, ac, resp, o)
	csr, _ := csrFor(t, svcName("life"))
	if _, _, err := ac.CreateOrderCert(ctx, o.FinalizeURL, csr, true); err != nil {
		t.Fatal(err)
	}
	replacing().wantProblem(t, "alreadyReplaced", http.StatusConflict)
	if r := do(t, http.MethodGet, e.url("renewal-info/AAAA.AQID"), "", nil); r.status != http.StatusNotFound {
		t.Fatalf("renewal-info of an unknown certificate: %d", r.status)
	}

	// Revocation signed by the certificate's own key, then again.
	if err := ac.RevokeCert(ctx, certKeys[leaf.SerialNumber.String()], leaf.Raw, acme.CRLReasonKeyCompromise); err != nil {
		t.Fatalf("revoke by the certificate key: %v", err)
	}
	// (x/crypto/acme hides alreadyRevoked; ask by hand.)
	payload, _ := json.Marshal(map[string]string{"certificate": base64.RawURLEncoding.EncodeToString(leaf.Raw)})
	e.post(t, e.url("revoke-cert"), jwstest.Sign(rolled, jwstest.Header{Nonce: e.nonce(t), URL: e.url("revoke-cert"), KID: string(ac.KID)}, payload)).
		wantProblem(t, "alreadyRevoked", http.StatusBadRequest)
	rec, err := e.client(t, admin).Certificate(ctx, "pki", leaf.SerialNumber.Text(16))
	if err != nil || !rec.Revoked || rec.RevocationReason != "key-compromise" {
		t.Fatalf("record after revocation: %+v %v", rec, err)
	}
	// Another key than the certificate's may not revoke with jwk.
	second := issue("life2")
	if err := ac.RevokeCert(ctx, newKey(t), second.Raw, acme.CRLReasonUnspecified); !isProblem(err, "unauthorized") {
		t.Fatalf("revoke with another key: %v", err)
	}
	if err := ac.RevokeCert(ctx, nil, second.Raw, acme.CRLReasonCode(7)); !isProblem(err, "badRevocationReason") {
		t.Fatalf("reason 7: %v", err)
	}
	if err := ac.RevokeCert(ctx, nil, second.Raw, acme.CRLReasonSuperseded); err != nil {
		t.Fatalf("revoke by the account: %v", err)
	}

	// Deactivation is final.
	if err := ac.DeactivateReg(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: svcName("life")}}); !isProblem(err, "unauthorized") {
		t.Fatalf("order after deactivation: %v", err)
	}
}
