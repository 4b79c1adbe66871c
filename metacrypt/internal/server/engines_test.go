package server_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/restclient"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
	"git.metacircular.net/metacircular/metacrypt/client"
)

// More callers for the engine tests: human users like alice.
const (
	bob   = "bob"
	carol = "carol"
)

// users makes sure each name is an MCIAS human account with the role
// "user" and a token in env.tokens (created on first use, for the
// package's MCIAS).
func users(t *testing.T, names ...string) {
	t.Helper()
	ctx := t.Context()
	for _, name := range names {
		if env.tokens[name] != "" {
			continue
		}
		mc, err := mciasclient.New(env.mciasGRPC, env.ca.CertPath(), env.tokens[admin])
		if err != nil {
			t.Fatal(err)
		}
		pw := name + "-password-123"
		_, err = mc.CreateAccount(ctx, mciasclient.CreateAccountRequest{Username: name, AccountType: "human", Password: pw, Roles: []string{"user"}})
		_ = mc.Close()
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		lc, err := mciasclient.New(env.mciasGRPC, env.ca.CertPath(), "")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := lc.Login(ctx, mciasclient.LoginRequest{Username: name, Password: pw})
		_ = lc.Close()
		if err != nil {
			t.Fatalf("%s login: %v", name, err)
		}
		env.tokens[name] = tok.Token
	}
}

// initialized starts a fresh Metacrypt, initialized (so unsealed), with
// the given mounts (name = type) and ACL rules, and no CA.
func initialized(t *testing.T, mounts []string, rules ...client.Rule) *harness {
	t.Helper()
	ctx := t.Context()
	h := start(t)
	ad := h.client(t, admin)
	if _, err := ad.Init(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if _, err := ad.CreateMount(ctx, m, m); err != nil {
			t.Fatalf("mount %s: %v", m, err)
		}
	}
	for _, r := range rules {
		if _, err := ad.CreateRule(ctx, r); err != nil {
			t.Fatalf("rule %+v: %v", r, err)
		}
	}
	return h
}

// rule is an allow rule for accounts on a mount.
func rule(accounts []string, mount string, ops []string, resources ...string) client.Rule {
	return client.Rule{Priority: 10, Effect: "allow", Subject: client.Subject{Accounts: accounts}, Mounts: []string{mount}, Operations: ops, Resources: resources}
}

// sshKey makes an Ed25519 key and its authorized_keys line.
func sshKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, string(ssh.MarshalAuthorizedKey(p))
}

// request sends one HTTP request with extra headers to base and returns
// the status, headers and body.
func request(t *testing.T, base, method, path, caller, body string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if caller != "" {
		req.Header.Set("Authorization", "Bearer "+env.tokens[caller])
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig()}}
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
	return resp.StatusCode, resp.Header, b
}

// sealedNothingLeaked checks a REST call answers 503 whose body is the sealed
// error and nothing else, naming none of secrets, for an admin and for
// no caller.
func sealedNothingLeaked(t *testing.T, h *harness, method, path, body string, secrets ...string) {
	t.Helper()
	for _, who := range []string{admin, ""} {
		code, _, b := rawCall(t, h.rest, method, path, who, body)
		var got map[string]any
		if err := json.Unmarshal(b, &got); code != http.StatusServiceUnavailable || err != nil || len(got) != 1 || !strings.Contains(fmt.Sprint(got["error"]), "sealed") {
			t.Errorf("%s %s as %q while sealed: %d %s", method, path, who, code, b)
		}
		for _, s := range secrets {
			if s != "" && bytes.Contains(b, []byte(s)) {
				t.Errorf("%s %s while sealed leaks %q: %s", method, path, s, b)
			}
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestEngineMountTypes creates each new engine's mount through the
// existing CreateMount RPC and REST endpoint (the types come from the
// engine registry), refuses an unknown type naming the known ones, and
// lists them.
func TestEngineMountTypes(t *testing.T) {
	ctx := t.Context()
	h := initialized(t, []string{"ssh", "transit"})
	ad := h.client(t, admin)
	var m struct {
		Name, Type string
	}
	if err := h.restClient(t, admin).Do(ctx, http.MethodPost, "/v1/sys/mounts", map[string]string{"name": "messages", "type": "u2u"}, &m); err != nil || m.Type != "u2u" {
		t.Fatalf("REST create u2u mount: %+v %v", m, err)
	}
	_, err := ad.CreateMount(ctx, "vault", "kv")
	if client.KindOf(err) != apierr.Invalid || !strings.Contains(err.Error(), "ssh") || !strings.Contains(err.Error(), "transit") || !strings.Contains(err.Error(), "u2u") {
		t.Fatalf("unknown type: %v", err)
	}
	list, err := ad.Mounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, m := range list {
		types[m.Name] = m.Type
	}
	if types["ssh"] != "ssh" || types["transit"] != "transit" || types["messages"] != "u2u" || len(types) != 3 {
		t.Fatalf("mounts: %v", types)
	}
	// A typed RPC refuses a mount of another type.
	if _, err := ad.GenerateSSHCA(ctx, "transit", ""); client.KindOf(err) != apierr.Precondition {
		t.Fatalf("SSH CA on a transit mount: %v", err)
	}
}

// TestSSHEngineOverAPI drives the SSH CA over gRPC, REST and the generic
// request: a {{username}} profile signs alice's own name and refuses
// another's (for her and over both faces), a guest is refused, bob may not
// revoke alice's certificate, the public CA key and KRL answer without a
// token with ETag, Last-Modified and conditional requests; a revocation
// shows in the KRL; sealed, the API answers 503 with nothing else while
// the public endpoints still serve the revoked KRL, also after a restart.
func TestSSHEngineOverAPI(t *testing.T) {
	ctx := t.Context()
	users(t, bob)
	h := initialized(t, []string{"ssh"},
		rule([]string{alice, bob}, "ssh", []string{"sign", "revoke"}, "profile/users"))
	ad, al := h.client(t, admin), h.client(t, alice)
	ca, err := ad.GenerateSSHCA(ctx, "ssh", "")
	if err != nil || ca.KeyType != "ed25519" || !strings.HasPrefix(ca.PublicKey, "ssh-ed25519 ") {
		t.Fatalf("generate CA: %+v %v", ca, err)
	}
	if _, err := ad.CreateSSHProfile(ctx, "ssh", client.SSHProfileRequest{Name: "users", CertType: "user",
		AllowedPrincipals: []string{"{{username}}"}, DefaultPrincipals: []string{"{{username}}"}, DefaultExtensions: []string{"permit-pty"}}); err != nil {
		t.Fatal(err)
	}

	_, pub := sshKey(t)
	s, err := al.SignSSH(ctx, "ssh", client.SSHSignRequest{Profile: "users", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := parsed.(*ssh.Certificate)
	if !ok || !slices.Equal(cert.ValidPrincipals, []string{alice}) || cert.KeyId != alice || cert.Serial != s.Record.Serial ||
		string(ssh.MarshalAuthorizedKey(cert.SignatureKey)) != ca.PublicKey || s.Record.RequestedBy != alice {
		t.Fatalf("alice's certificate: %+v %+v", cert, s.Record)
	}
	if _, err := al.SignSSH(ctx, "ssh", client.SSHSignRequest{Profile: "users", PublicKey: pub, Principals: []string{bob}}); client.KindOf(err) != apierr.Denied ||
		!strings.Contains(err.Error(), "principals[0]") {
		t.Fatalf("alice signs for bob over gRPC: %v", err)
	}
	var signed struct {
		Certificate string `json:"certificate"`
		Record      struct {
			Serial     uint64   `json:"serial"`
			Principals []string `json:"principals"`
		} `json:"record"`
	}
	err = h.restClient(t, alice).Do(ctx, http.MethodPost, "/v1/ssh/ssh/sign/users", map[string]any{"public_key": pub, "principals": []string{bob}}, &signed)
	if restclient.StatusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "principals[0]") {
		t.Fatalf("alice signs for bob over REST: %v", err)
	}
	if err := h.restClient(t, alice).Do(ctx, http.MethodPost, "/v1/ssh/ssh/sign/users", map[string]any{"public_key": pub, "ttl": "30m"}, &signed); err != nil ||
		!strings.Contains(signed.Certificate, "-cert-v01@openssh.com ") || !slices.Equal(signed.Record.Principals, []string{alice}) {
		t.Fatalf("alice signs over REST: %+v %v", signed, err)
	}
	if _, err := h.client(t, gina).SignSSH(ctx, "ssh", client.SSHSignRequest{Profile: "users", PublicKey: pub}); client.KindOf(err) != apierr.Denied {
		t.Fatalf("guest signs: %v", err)
	}
	if _, err := h.client(t, bob).RevokeSSH(ctx, "ssh", client.SSHRevokeRequest{Serial: s.Record.Serial}); client.KindOf(err) != apierr.Denied {
		t.Fatalf("bob revokes alice's certificate: %v", err)
	}

	// The public endpoints, without a token, on both listeners.
	for _, base := range []string{h.rest, h.pki} {
		code, hd, body := request(t, base, http.MethodGet, "/v1/ssh/ssh/ca", "", "", nil)
		if code != http.StatusOK || string(body) != ca.PublicKey || !strings.HasPrefix(hd.Get("Content-Type"), "text/plain") {
			t.Fatalf("GET %s/v1/ssh/ssh/ca: %d %v %q", base, code, hd, body)
		}
	}
	krl1, err := ad.SSHKRL(ctx, "ssh")
	if err != nil || krl1.Version != 1 {
		t.Fatalf("KRL: %+v %v", krl1, err)
	}
	code, hd, body := request(t, h.rest, http.MethodGet, "/v1/ssh/ssh/krl", "", "", nil)
	etag := hd.Get("ETag")
	if code != http.StatusOK || !bytes.Equal(body, krl1.KRL) || hd.Get("Content-Type") != "application/octet-stream" ||
		hd.Get("Content-Length") != fmt.Sprint(len(krl1.KRL)) || etag == "" || hd.Get("Last-Modified") == "" || hd.Get("X-KRL-Version") != "1" {
		t.Fatalf("GET krl: %d %v %x", code, hd, body)
	}
	if code, _, body := request(t, h.rest, http.MethodGet, "/v1/ssh/ssh/krl", "", "", map[string]string{"If-None-Match": etag}); code != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("conditional GET krl: %d %q", code, body)
	}
	if code, hd, body := request(t, h.rest, http.MethodHead, "/v1/ssh/ssh/krl", "", "", nil); code != http.StatusOK || len(body) != 0 || hd.Get("Content-Length") != fmt.Sprint(len(krl1.KRL)) {
		t.Fatalf("HEAD krl: %d %v", code, hd)
	}
	if code, _, _ := request(t, h.rest, http.MethodGet, "/v1/ssh/nosuch/krl", "", "", nil); code != http.StatusNotFound {
		t.Fatalf("KRL of no mount: %d", code)
	}

	// The typed REST face and the generic request reach the same engine.
	var info struct {
		PublicKey string `json:"public_key"`
	}
	if err := h.restClient(t, alice).Do(ctx, http.MethodGet, "/v1/ssh/ssh/ca/info", nil, &info); err != nil || info.PublicKey != ca.PublicKey {
		t.Fatalf("GET ca/info: %+v %v", info, err)
	}
	gen, err := al.Request(ctx, "ssh", "get-ca", "", nil)
	if err != nil || gen["public_key"] != ca.PublicKey {
		t.Fatalf("generic get-ca: %v %v", gen, err)
	}

	rev, err := al.RevokeSSH(ctx, "ssh", client.SSHRevokeRequest{Serial: s.Record.Serial})
	if err != nil || rev.KRLVersion != 2 || !slices.Equal(rev.Serials, []uint64{s.Record.Serial}) {
		t.Fatalf("alice revokes her certificate: %+v %v", rev, err)
	}
	krl2, err := ad.SSHKRL(ctx, "ssh")
	if err != nil || krl2.Version != 2 || bytes.Equal(krl2.KRL, krl1.KRL) {
		t.Fatalf("KRL after revocation: %+v %v", krl2, err)
	}
	code, hd, body = request(t, h.rest, http.MethodGet, "/v1/ssh/ssh/krl", "", "", map[string]string{"If-None-Match": etag})
	if code != http.StatusOK || !bytes.Equal(body, krl2.KRL) || hd.Get("ETag") == etag || hd.Get("X-KRL-Version") != "2" {
		t.Fatalf("KRL after revocation, conditional on the old ETag: %d %v", code, hd)
	}

	// Sealed: the API answers 503 and nothing else; the public endpoints
	// serve the revoked KRL.
	if _, err := ad.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	sealedNothingLeaked(t, h, "POST", "/v1/ssh/ssh/sign/users", `{"public_key":"`+strings.TrimSpace(pub)+`"}`, ca.PublicKey)
	sealedNothingLeaked(t, h, "GET", "/v1/ssh/ssh/ca/info", "", ca.PublicKey)
	sealedNothingLeaked(t, h, "GET", "/v1/ssh/ssh/krl/info", "")
	sealedNothingLeaked(t, h, "GET", "/v1/ssh/ssh/certs/1", "", s.Certificate)
	sealedNothingLeaked(t, h, "POST", "/v1/engine/request", `{"mount":"ssh","operation":"get-ca"}`, ca.PublicKey)
	if _, err := al.SignSSH(ctx, "ssh", client.SSHSignRequest{Profile: "users", PublicKey: pub}); status.Code(err) != codes.Unavailable && client.KindOf(err) != apierr.Unavailable {
		t.Fatalf("sign while sealed: %v", err)
	}
	checkPublic := func(when string) {
		t.Helper()
		for _, base := range []string{h.rest, h.pki} {
			if code, _, body := request(t, base, http.MethodGet, "/v1/ssh/ssh/krl", "", "", nil); code != http.StatusOK || !bytes.Equal(body, krl2.KRL) {
				t.Fatalf("KRL %s from %s: %d", when, base, code)
			}
			if code, _, body := request(t, base, http.MethodGet, "/v1/ssh/ssh/ca", "", "", nil); code != http.StatusOK || string(body) != ca.PublicKey {
				t.Fatalf("CA key %s from %s: %d", when, base, code)
			}
		}
	}
	checkPublic("while sealed")
	h.restart(t)
	checkPublic("after a restart (sealed)")
	if _, err := h.client(t, "").Unseal(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	list, err := h.client(t, admin).SSHCertificates(ctx, "ssh", client.SSHFilter{Status: "revoked"})
	if err != nil || len(list) != 1 || list[0].Serial != s.Record.Serial {
		t.Fatalf("revoked certificates after unseal: %+v %v", list, err)
	}
}

// TestTransitEngineOverAPI drives transit over gRPC, REST and the generic
// request: alice may only encrypt and cannot decrypt; bob decrypts and
// rewraps; rotation keeps v1 decryptable, rewrap yields v2, raising
// min_decryption_version refuses v1; wrong associated data fails; batches
// fail item by item; sealed, every face answers 503 with nothing else.
func TestTransitEngineOverAPI(t *testing.T) {
	ctx := t.Context()
	users(t, bob)
	h := initialized(t, []string{"transit"},
		rule([]string{alice}, "transit", []string{"encrypt"}, "key/orders"),
		rule([]string{bob}, "transit", []string{"decrypt", "rewrap"}, "key/orders"))
	ad, al, bo := h.client(t, admin), h.client(t, alice), h.client(t, bob)
	if _, err := ad.CreateTransitKey(ctx, "transit", client.TransitKeyRequest{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	const secret = "card 4111 1111 1111 1111"
	ct1, err := al.Encrypt(ctx, "transit", client.EncryptRequest{Key: "orders", Plaintext: []byte(secret), AssociatedData: []byte("order-1")})
	if err != nil || ct1.KeyVersion != 1 || !strings.HasPrefix(ct1.Ciphertext, "metacrypt:v1:") || strings.Contains(ct1.Ciphertext, b64(secret)) {
		t.Fatalf("alice encrypts: %+v %v", ct1, err)
	}
	if _, err := al.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct1.Ciphertext, AssociatedData: []byte("order-1")}); client.KindOf(err) != apierr.Denied {
		t.Fatalf("alice decrypts over gRPC: %v", err)
	}
	var pt struct {
		Plaintext  []byte `json:"plaintext"`
		KeyVersion int    `json:"key_version"`
	}
	decryptBody := map[string]any{"ciphertext": ct1.Ciphertext, "associated_data": b64("order-1")}
	if err := h.restClient(t, alice).Do(ctx, http.MethodPost, "/v1/transit/transit/decrypt/orders", decryptBody, &pt); restclient.StatusOf(err) != http.StatusForbidden || pt.Plaintext != nil {
		t.Fatalf("alice decrypts over REST: %v %q", err, pt.Plaintext)
	}
	if _, err := al.Request(ctx, "transit", "decrypt", "key/orders", decryptBody); client.KindOf(err) != apierr.Denied {
		t.Fatalf("alice decrypts through the generic request: %v", err)
	}
	if err := h.restClient(t, bob).Do(ctx, http.MethodPost, "/v1/transit/transit/decrypt/orders", decryptBody, &pt); err != nil || string(pt.Plaintext) != secret {
		t.Fatalf("bob decrypts over REST: %q %v", pt.Plaintext, err)
	}
	if _, err := bo.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct1.Ciphertext, AssociatedData: []byte("order-2")}); err == nil {
		t.Fatal("decrypted with the wrong associated data")
	}
	if _, err := bo.Encrypt(ctx, "transit", client.EncryptRequest{Key: "orders", Plaintext: []byte("x")}); client.KindOf(err) != apierr.Denied {
		t.Fatalf("bob encrypts: %v", err)
	}

	k, err := ad.RotateTransitKey(ctx, "transit", "orders")
	if err != nil || k.LatestVersion != 2 {
		t.Fatalf("rotate: %+v %v", k, err)
	}
	if got, err := bo.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct1.Ciphertext, AssociatedData: []byte("order-1")}); err != nil ||
		string(got.Plaintext) != secret || got.KeyVersion != 1 {
		t.Fatalf("decrypt v1 after rotation: %+v %v", got, err)
	}
	ct2, err := bo.Rewrap(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct1.Ciphertext, AssociatedData: []byte("order-1")})
	if err != nil || ct2.KeyVersion != 2 || !strings.HasPrefix(ct2.Ciphertext, "metacrypt:v2:") {
		t.Fatalf("rewrap: %+v %v", ct2, err)
	}
	// Over REST, the optional fields: only min_decryption_version changes.
	var cfg struct {
		MinDecryptionVersion int  `json:"min_decryption_version"`
		DeletionAllowed      bool `json:"deletion_allowed"`
		LatestVersion        int  `json:"latest_version"`
	}
	if err := h.restClient(t, admin).Do(ctx, http.MethodPost, "/v1/transit/transit/keys/orders/config", map[string]int{"min_decryption_version": 2}, &cfg); err != nil ||
		cfg.MinDecryptionVersion != 2 || cfg.DeletionAllowed || cfg.LatestVersion != 2 {
		t.Fatalf("config over REST: %+v %v", cfg, err)
	}
	if _, err := bo.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct1.Ciphertext, AssociatedData: []byte("order-1")}); client.KindOf(err) != apierr.Precondition ||
		!strings.Contains(err.Error(), "ciphertext") {
		t.Fatalf("decrypt v1 below min_decryption_version: %v", err)
	}
	if got, err := bo.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct2.Ciphertext, AssociatedData: []byte("order-1")}); err != nil || string(got.Plaintext) != secret {
		t.Fatalf("decrypt the rewrapped v2: %+v %v", got, err)
	}

	// Batches over REST: base64 in JSON, items failing one by one.
	var batch struct {
		Results []struct {
			Ciphertext string `json:"ciphertext"`
			Plaintext  []byte `json:"plaintext"`
			KeyVersion int    `json:"key_version"`
			Error      string `json:"error"`
			Field      string `json:"field"`
		} `json:"results"`
	}
	if err := h.restClient(t, alice).Do(ctx, http.MethodPost, "/v1/transit/transit/encrypt/orders/batch",
		map[string]any{"items": []map[string]string{{"plaintext": b64("one")}, {"plaintext": b64("two")}}}, &batch); err != nil || len(batch.Results) != 2 {
		t.Fatalf("encrypt batch: %+v %v", batch, err)
	}
	items := []map[string]string{{"ciphertext": batch.Results[0].Ciphertext}, {"ciphertext": "metacrypt:v2:AAAA"}, {"ciphertext": batch.Results[1].Ciphertext}}
	if err := h.restClient(t, bob).Do(ctx, http.MethodPost, "/v1/transit/transit/decrypt/orders/batch", map[string]any{"items": items}, &batch); err != nil ||
		len(batch.Results) != 3 || string(batch.Results[0].Plaintext) != "one" || string(batch.Results[2].Plaintext) != "two" ||
		batch.Results[1].Error == "" || batch.Results[1].Field != "items[1].ciphertext" {
		t.Fatalf("decrypt batch: %+v %v", batch, err)
	}
	gen, err := al.Request(ctx, "transit", "encrypt", "key/orders", map[string]any{"plaintext": b64("generic")})
	if err != nil || !strings.HasPrefix(fmt.Sprint(gen["ciphertext"]), "metacrypt:v2:") {
		t.Fatalf("generic encrypt: %v %v", gen, err)
	}

	if _, err := ad.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	sealedNothingLeaked(t, h, "POST", "/v1/transit/transit/decrypt/orders", `{"ciphertext":"`+ct2.Ciphertext+`","associated_data":"`+b64("order-1")+`"}`, b64(secret), secret)
	sealedNothingLeaked(t, h, "POST", "/v1/transit/transit/encrypt/orders", `{"plaintext":"`+b64("x")+`"}`)
	sealedNothingLeaked(t, h, "GET", "/v1/transit/transit/keys/orders", "", "metacrypt:v")
	sealedNothingLeaked(t, h, "POST", "/v1/engine/request", `{"mount":"transit","operation":"decrypt","path":"key/orders","data":{"ciphertext":"`+ct2.Ciphertext+`"}}`, b64(secret))
	if _, err := bo.Decrypt(ctx, "transit", client.DecryptRequest{Key: "orders", Ciphertext: ct2.Ciphertext, AssociatedData: []byte("order-1")}); client.KindOf(err) != apierr.Unavailable {
		t.Fatalf("decrypt while sealed: %v", err)
	}
}

// TestU2UEngineOverAPI drives u2u over gRPC and REST: alice sends to bob,
// bob opens it and learns it is from alice; carol and an admin cannot
// open it; a guest without a rule cannot send; sealed, 503 and nothing
// else.
func TestU2UEngineOverAPI(t *testing.T) {
	ctx := t.Context()
	users(t, bob, carol)
	h := initialized(t, []string{"u2u"},
		client.Rule{Priority: 10, Effect: "allow", Subject: client.Subject{Roles: []string{"user"}}, Mounts: []string{"u2u"},
			Operations: []string{"manage", "read", "send", "open"}, Resources: []string{"user/*", "users"}})
	ad, al, bo, ca := h.client(t, admin), h.client(t, alice), h.client(t, bob), h.client(t, carol)
	if _, err := bo.CreateU2UKey(ctx, "u2u"); err != nil {
		t.Fatal(err)
	}
	const note = "the door code is 4711"
	sent, err := al.Send(ctx, "u2u", bob, []byte(note), nil)
	if err != nil || bytes.Contains(sent.Message, []byte(note)) {
		t.Fatalf("alice sends: %+v %v", sent, err)
	}
	got, err := bo.Open(ctx, "u2u", sent.Message, nil)
	if err != nil || got.Sender != alice || string(got.Plaintext) != note {
		t.Fatalf("bob opens: %+v %v", got, err)
	}
	for _, who := range []*client.Client{ca, ad} {
		if o, err := who.Open(ctx, "u2u", sent.Message, nil); err == nil || o.Plaintext != nil {
			t.Fatalf("someone else opens bob's message: %+v %v", o, err)
		}
	}
	if _, err := h.client(t, gina).Send(ctx, "u2u", bob, []byte("hi"), nil); client.KindOf(err) != apierr.Denied {
		t.Fatalf("guest sends: %v", err)
	}

	var rs struct {
		Message []byte `json:"message"`
	}
	if err := h.restClient(t, alice).Do(ctx, http.MethodPost, "/v1/u2u/u2u/send/bob", map[string]string{"plaintext": b64("over REST"), "associated_data": b64("ticket-1")}, &rs); err != nil {
		t.Fatal(err)
	}
	var ro struct {
		Sender    string `json:"sender"`
		Plaintext []byte `json:"plaintext"`
	}
	open := map[string]string{"message": base64.StdEncoding.EncodeToString(rs.Message), "associated_data": b64("ticket-1")}
	if err := h.restClient(t, bob).Do(ctx, http.MethodPost, "/v1/u2u/u2u/open", open, &ro); err != nil || ro.Sender != alice || string(ro.Plaintext) != "over REST" {
		t.Fatalf("bob opens over REST: %+v %v", ro, err)
	}
	if err := h.restClient(t, carol).Do(ctx, http.MethodPost, "/v1/u2u/u2u/open", open, &ro); restclient.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("carol opens over REST: %v", err)
	}
	keys, err := ca.U2UKeys(ctx, "u2u")
	if err != nil || len(keys) != 2 || keys[0].Username != alice || keys[1].Username != bob {
		t.Fatalf("list keys: %+v %v", keys, err)
	}

	if _, err := ad.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	sealedNothingLeaked(t, h, "POST", "/v1/u2u/u2u/open", `{"message":"`+base64.StdEncoding.EncodeToString(sent.Message)+`"}`, b64(note), note)
	sealedNothingLeaked(t, h, "GET", "/v1/u2u/u2u/keys", "")
	if _, err := bo.Open(ctx, "u2u", sent.Message, nil); client.KindOf(err) != apierr.Unavailable {
		t.Fatalf("open while sealed: %v", err)
	}
}
