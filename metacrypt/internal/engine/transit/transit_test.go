package transit

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/enginetest"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

var (
	admin = engine.Caller{Username: "admin", Roles: []string{engine.RoleAdmin}}
	app   = engine.Caller{Username: "app", AccountType: "system"}
	// logger may only encrypt with key "audit".
	logger = engine.Caller{Username: "logger", AccountType: "system"}
)

type fixture struct {
	svc *Service
	env *enginetest.Env
}

// newFixture is the engine over in-memory mounts "transit" and "other"
// (an SSH mount), with rules: app may do anything to every key; logger
// may only encrypt with "audit".
func newFixture(t testing.TB) *fixture {
	t.Helper()
	env := enginetest.New()
	env.Mount("transit", Type)
	env.Mount("other", "ssh")
	env.Rule(policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"app"}}, Mounts: []string{"transit"},
		Operations: []string{"*"}, Resources: []string{"key/*", "keys"}})
	env.Rule(policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"logger"}}, Mounts: []string{"transit"},
		Operations: []string{OpEncrypt}, Resources: []string{"key/audit"}})
	return &fixture{svc: New(Deps{Mounts: env, Authz: env, Sealed: env.Sealed}), env: env}
}

func (f *fixture) create(t testing.TB, name string, typ KeyType, derived, exportable bool) {
	t.Helper()
	if _, err := f.svc.CreateKey(t.Context(), admin, "transit", CreateKeyRequest{Name: name, Type: string(typ), Derived: derived, Exportable: exportable}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func (f *fixture) rotate(t testing.TB, name string) {
	t.Helper()
	if _, err := f.svc.RotateKey(t.Context(), app, "transit", name); err != nil {
		t.Fatal(err)
	}
}

// TestRotateRewrapMinVersion is the key lifecycle: encrypt with v1,
// rotate, v1 still decrypts, rewrap yields v2, raising
// min_decryption_version makes v1 fail with an error saying why.
func TestRotateRewrapMinVersion(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	f.create(t, "payments", AES256GCM96, false, false)
	secret := []byte("card 4111 1111 1111 1111")
	aad := []byte("order-42")
	v1, err := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: "payments", Plaintext: secret, AssociatedData: aad})
	if err != nil || v1.KeyVersion != 1 || !strings.HasPrefix(v1.Ciphertext, "metacrypt:v1:") {
		t.Fatalf("encrypt: %+v %v", v1, err)
	}
	info, err := f.svc.RotateKey(ctx, app, "transit", "payments")
	if err != nil || info.LatestVersion != 2 || len(info.Versions) != 2 {
		t.Fatalf("rotate: %+v %v", info, err)
	}
	p, err := f.svc.Decrypt(ctx, app, "transit", DecryptRequest{Key: "payments", Ciphertext: v1.Ciphertext, AssociatedData: aad})
	if err != nil || !bytes.Equal(p.Plaintext, secret) || p.KeyVersion != 1 {
		t.Fatalf("decrypt v1 after rotation: %+v %v", p, err)
	}
	v2, err := f.svc.Rewrap(ctx, app, "transit", RewrapRequest{Key: "payments", Ciphertext: v1.Ciphertext, AssociatedData: aad})
	if err != nil || v2.KeyVersion != 2 || !strings.HasPrefix(v2.Ciphertext, "metacrypt:v2:") {
		t.Fatalf("rewrap: %+v %v", v2, err)
	}
	if p, err := f.svc.Decrypt(ctx, app, "transit", DecryptRequest{Key: "payments", Ciphertext: v2.Ciphertext, AssociatedData: aad}); err != nil || !bytes.Equal(p.Plaintext, secret) {
		t.Fatalf("decrypt rewrapped: %v", err)
	}
	if _, err := f.svc.UpdateKeyConfig(ctx, app, "transit", KeyConfigRequest{Name: "payments", MinDecryptionVersion: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	for op, err := range map[string]error{
		"decrypt": second(f.svc.Decrypt(ctx, app, "transit", DecryptRequest{Key: "payments", Ciphertext: v1.Ciphertext, AssociatedData: aad})),
		"rewrap":  second(f.svc.Rewrap(ctx, app, "transit", RewrapRequest{Key: "payments", Ciphertext: v1.Ciphertext, AssociatedData: aad})),
	} {
		d := apierr.Describe(err)
		if d.Kind != apierr.Precondition || d.Field != "ciphertext" || !strings.Contains(d.Message, "below key payments's min_decryption_version 2") {
			t.Errorf("%s of v1 after raising min_decryption_version: %+v", op, d)
		}
	}
	if _, err := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: "payments", Plaintext: secret, KeyVersion: 1}); apierr.Describe(err).Field != "key_version" {
		t.Fatalf("encrypt with a retired version: %v", err)
	}
	if _, err := f.svc.UpdateKeyConfig(ctx, app, "transit", KeyConfigRequest{Name: "payments", MinDecryptionVersion: ptr(3)}); apierr.Describe(err).Field != "min_decryption_version" {
		t.Fatalf("min above latest: %v", err)
	}
	f.rotate(t, "payments")
	if _, err := f.svc.UpdateKeyConfig(ctx, app, "transit", KeyConfigRequest{Name: "payments", MinEncryptionVersion: ptr(1)}); apierr.Describe(err).Field != "min_encryption_version" {
		t.Fatalf("min encryption below min decryption: %v", err)
	}
	info, err = f.svc.UpdateKeyConfig(ctx, app, "transit", KeyConfigRequest{Name: "payments", MinEncryptionVersion: ptr(3)})
	if err != nil || info.MinEncryptionVersion != 3 || info.MinDecryptionVersion != 2 {
		t.Fatalf("min encryption: %+v %v", info, err)
	}
	if _, err := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: "payments", KeyVersion: 2}); apierr.Describe(err).Field != "key_version" {
		t.Fatalf("encrypt below min_encryption_version: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestEncryptionFailures checks, for both ciphers and derived keys, that
// a tampered ciphertext, a relabelled version, other associated data or
// another context do not decrypt, and the errors name the field.
func TestEncryptionFailures(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	for _, c := range []struct {
		name    string
		typ     KeyType
		derived bool
	}{{"aes", AES256GCM96, false}, {"chacha", ChaCha20Poly1305, false}, {"derived", AES256GCM96, true}, {"derived-chacha", ChaCha20Poly1305, true}} {
		t.Run(c.name, func(t *testing.T) {
			f.create(t, c.name, c.typ, c.derived, false)
			var kdc []byte
			if c.derived {
				kdc = []byte("tenant-1")
			}
			ct, err := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: c.name, Plaintext: []byte("hello"), AssociatedData: []byte("ad"), Context: kdc})
			if err != nil {
				t.Fatal(err)
			}
			f.rotate(t, c.name)
			_, raw, _ := Parse("ciphertext", ct.Ciphertext)
			tampered := bytes.Clone(raw)
			tampered[len(tampered)-1] ^= 1
			cases := map[string]DecryptRequest{
				"tampered":         {Ciphertext: Format(1, tampered), AssociatedData: []byte("ad"), Context: kdc},
				"version relabel":  {Ciphertext: Format(2, raw), AssociatedData: []byte("ad"), Context: kdc},
				"wrong AAD":        {Ciphertext: ct.Ciphertext, AssociatedData: []byte("ae"), Context: kdc},
				"no AAD":           {Ciphertext: ct.Ciphertext, Context: kdc},
				"truncated":        {Ciphertext: Format(1, raw[:10]), AssociatedData: []byte("ad"), Context: kdc},
				"not a ciphertext": {Ciphertext: "vault:v1:abcd", AssociatedData: []byte("ad"), Context: kdc},
				"no such version":  {Ciphertext: Format(3, raw), AssociatedData: []byte("ad"), Context: kdc},
			}
			if c.derived {
				cases["wrong context"] = DecryptRequest{Ciphertext: ct.Ciphertext, AssociatedData: []byte("ad"), Context: []byte("tenant-2")}
			}
			for name, r := range cases {
				r.Key = c.name
				if _, err := f.svc.Decrypt(ctx, app, "transit", r); apierr.Describe(err).Kind != apierr.Invalid || apierr.Describe(err).Field != "ciphertext" {
					t.Errorf("%s: %v", name, err)
				}
			}
			p, err := f.svc.Decrypt(ctx, app, "transit", DecryptRequest{Key: c.name, Ciphertext: ct.Ciphertext, AssociatedData: []byte("ad"), Context: kdc})
			if err != nil || string(p.Plaintext) != "hello" {
				t.Fatalf("decrypt: %v", err)
			}
			wantField := "context"
			other := []byte("x")
			if c.derived {
				other = nil
			}
			if _, err := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: c.name, Plaintext: []byte("x"), Context: other}); apierr.Describe(err).Field != wantField {
				t.Errorf("context misuse: %v", err)
			}
		})
	}
}

// TestExportedKeyDecrypts checks the ciphertext format against the
// standard library: an exported version's key opens the engine's
// ciphertext with plain AES-GCM and ChaCha20-Poly1305.
func TestExportedKeyDecrypts(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	for _, typ := range []KeyType{AES256GCM96, ChaCha20Poly1305} {
		name := "exp-" + string(typ)
		f.create(t, name, typ, false, true)
		ct, err := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: name, Plaintext: []byte("interop"), AssociatedData: []byte("ad")})
		if err != nil {
			t.Fatal(err)
		}
		exp, err := f.svc.ExportKey(ctx, app, "transit", name, 0)
		if err != nil || len(exp.Versions) != 1 || len(exp.Versions[0].Key) != 32 || len(exp.Versions[0].HMACKey) != 32 {
			t.Fatalf("export: %+v %v", exp, err)
		}
		var a cipher.AEAD
		if typ == AES256GCM96 {
			block, _ := aes.NewCipher(exp.Versions[0].Key)
			a, _ = cipher.NewGCM(block)
		} else {
			a, _ = chacha20poly1305.New(exp.Versions[0].Key)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ct.Ciphertext, "metacrypt:v1:"))
		if err != nil {
			t.Fatal(err)
		}
		pt, err := a.Open(nil, raw[:12], raw[12:], []byte("ad"))
		if err != nil || string(pt) != "interop" {
			t.Fatalf("%s: standard library open: %v", typ, err)
		}
	}
	f.create(t, "sealed-in", AES256GCM96, false, false)
	if _, err := f.svc.ExportKey(ctx, admin, "transit", "sealed-in", 0); !errors.Is(err, engine.ErrPrecondition) {
		t.Fatalf("export of a non-exportable key: %v", err)
	}
	if _, err := f.svc.ExportKey(ctx, app, "transit", "exp-hmac", 0); apierr.KindOf(err) != apierr.NotFound {
		t.Fatalf("export of a missing key: %v", err)
	}
}

// TestSignVerify checks both signing types: signatures verify with the
// published public key, altered input or signatures do not, old versions
// verify until min_decryption_version passes them.
func TestSignVerify(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	msg := []byte("release v1.2.3")
	for _, typ := range []KeyType{Ed25519, ECDSAP256} {
		name := "sig-" + string(typ)
		f.create(t, name, typ, false, false)
		sig, err := f.svc.Sign(ctx, app, "transit", SignRequest{Key: name, Input: msg})
		if err != nil {
			t.Fatal(err)
		}
		info, err := f.svc.GetKey(ctx, app, "transit", name)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode([]byte(info.Versions[0].PublicKeyPEM))
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		_, raw, _ := Parse("signature", sig.Signature)
		digest := sha256.Sum256(msg)
		switch k := pub.(type) {
		case ed25519.PublicKey:
			if !ed25519.Verify(k, msg, raw) {
				t.Fatalf("%s: signature does not verify with the published key", typ)
			}
		case *ecdsa.PublicKey:
			if !ecdsa.VerifyASN1(k, digest[:], raw) {
				t.Fatalf("%s: signature does not verify with the published key", typ)
			}
			pre, err := f.svc.Sign(ctx, app, "transit", SignRequest{Key: name, Input: digest[:], Prehashed: true})
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := f.svc.Verify(ctx, app, "transit", VerifyRequest{Key: name, Input: msg, Signature: pre.Signature}); !ok || err != nil {
				t.Fatalf("prehashed signature over the message: %v %v", ok, err)
			}
		}
		verify := func(in []byte, s string) (bool, error) {
			return f.svc.Verify(ctx, app, "transit", VerifyRequest{Key: name, Input: in, Signature: s})
		}
		if ok, err := verify(msg, sig.Signature); !ok || err != nil {
			t.Fatalf("%s: verify: %v %v", typ, ok, err)
		}
		if ok, err := verify([]byte("release v1.2.4"), sig.Signature); ok || err != nil {
			t.Fatalf("%s: altered input: %v %v", typ, ok, err)
		}
		bad := bytes.Clone(raw)
		bad[len(bad)/2] ^= 1
		if ok, err := verify(msg, Format(1, bad)); ok || err != nil {
			t.Fatalf("%s: altered signature: %v %v", typ, ok, err)
		}
		if _, err := verify(msg, "metacrypt:v1:@@"); apierr.Describe(err).Field != "signature" {
			t.Fatalf("%s: malformed signature: %v", typ, err)
		}
		f.rotate(t, name)
		if ok, err := verify(msg, sig.Signature); !ok || err != nil {
			t.Fatalf("%s: v1 after rotation: %v %v", typ, ok, err)
		}
		if _, err := f.svc.UpdateKeyConfig(ctx, app, "transit", KeyConfigRequest{Name: name, MinDecryptionVersion: ptr(2)}); err != nil {
			t.Fatal(err)
		}
		if _, err := verify(msg, sig.Signature); apierr.KindOf(err) != apierr.Precondition {
			t.Fatalf("%s: v1 below min: %v", typ, err)
		}
	}
	if _, err := f.svc.Sign(ctx, app, "transit", SignRequest{Key: "sig-ed25519", Input: msg, Prehashed: true}); apierr.Describe(err).Field != "prehashed" {
		t.Fatalf("prehashed ed25519: %v", err)
	}
	if _, err := f.svc.Sign(ctx, app, "transit", SignRequest{Key: "sig-ecdsa-p256", Input: msg, Prehashed: true}); apierr.Describe(err).Field != "input" {
		t.Fatalf("short digest: %v", err)
	}
	f.create(t, "enc", AES256GCM96, false, false)
	if _, err := f.svc.Sign(ctx, app, "transit", SignRequest{Key: "enc", Input: msg}); apierr.Describe(err).Field != "key" {
		t.Fatalf("sign with an AES key: %v", err)
	}
	if _, err := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: "sig-ed25519", Plaintext: msg}); apierr.Describe(err).Field != "key" {
		t.Fatalf("encrypt with an Ed25519 key: %v", err)
	}
}

// TestHMAC checks HMAC keys and encryption keys' HMAC material against
// crypto/hmac with the exported keys, and constant-time verification.
func TestHMAC(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	f.create(t, "mac", HMAC, false, true)
	f.create(t, "enc", AES256GCM96, false, true)
	f.create(t, "sig", Ed25519, false, false)
	msg := []byte("webhook body")
	for _, name := range []string{"mac", "enc"} {
		h, err := f.svc.HMAC(ctx, app, "transit", HMACRequest{Key: name, Input: msg})
		if err != nil {
			t.Fatal(err)
		}
		exp, _ := f.svc.ExportKey(ctx, app, "transit", name, 1)
		key := exp.Versions[0].HMACKey
		if name == "mac" {
			key = exp.Versions[0].Key
		}
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		if h.HMAC != Format(1, m.Sum(nil)) {
			t.Fatalf("%s: HMAC differs from crypto/hmac's", name)
		}
		for in, want := range map[string]bool{"webhook body": true, "webhook bodY": false} {
			ok, err := f.svc.VerifyHMAC(ctx, app, "transit", VerifyHMACRequest{Key: name, Input: []byte(in), HMAC: h.HMAC})
			if err != nil || ok != want {
				t.Fatalf("%s: verify %q: %v %v", name, in, ok, err)
			}
		}
		h512, err := f.svc.HMAC(ctx, app, "transit", HMACRequest{Key: name, Input: msg, Algorithm: "sha2-512"})
		if _, raw, _ := Parse("hmac", h512.HMAC); err != nil || len(raw) != 64 {
			t.Fatalf("%s: sha2-512: %v", name, err)
		}
		if ok, _ := f.svc.VerifyHMAC(ctx, app, "transit", VerifyHMACRequest{Key: name, Input: msg, HMAC: h512.HMAC}); ok {
			t.Fatalf("%s: a sha2-512 HMAC verified as sha2-256", name)
		}
	}
	if _, err := f.svc.HMAC(ctx, app, "transit", HMACRequest{Key: "sig", Input: msg}); apierr.Describe(err).Field != "key" {
		t.Fatalf("HMAC with a signing key: %v", err)
	}
	if _, err := f.svc.HMAC(ctx, app, "transit", HMACRequest{Key: "mac", Input: msg, Algorithm: "md5"}); apierr.Describe(err).Field != "algorithm" {
		t.Fatalf("algorithm: %v", err)
	}
}

// TestDataKeyAndBatch checks envelope data keys and that batches fail
// item by item.
func TestDataKeyAndBatch(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	f.create(t, "env", ChaCha20Poly1305, false, false)
	dk, err := f.svc.GenerateDataKey(ctx, app, "transit", DataKeyRequest{Key: "env", IncludePlaintext: true})
	if err != nil || len(dk.Plaintext) != 32 {
		t.Fatalf("datakey: %+v %v", dk, err)
	}
	p, err := f.svc.Decrypt(ctx, app, "transit", DecryptRequest{Key: "env", Ciphertext: dk.Ciphertext})
	if err != nil || !bytes.Equal(p.Plaintext, dk.Plaintext) {
		t.Fatalf("unwrap data key: %v", err)
	}
	if dk, err := f.svc.GenerateDataKey(ctx, app, "transit", DataKeyRequest{Key: "env", Bits: 512}); err != nil || dk.Plaintext != nil {
		t.Fatalf("wrapped only: %+v %v", dk, err)
	}
	if _, err := f.svc.GenerateDataKey(ctx, app, "transit", DataKeyRequest{Key: "env", Bits: 64}); apierr.Describe(err).Field != "bits" {
		t.Fatalf("bits: %v", err)
	}

	enc, err := f.svc.EncryptBatch(ctx, app, "transit", EncryptBatchRequest{Key: "env", Items: []EncryptItem{
		{Plaintext: []byte("a")}, {Plaintext: []byte("b"), Context: []byte("x")}, {Plaintext: []byte("c"), AssociatedData: []byte("ad")},
	}})
	if err != nil || len(enc) != 3 || enc[0].Err != nil || enc[2].Err != nil || apierr.Describe(enc[1].Err).Field != "items[1].context" {
		t.Fatalf("encrypt batch: %+v %v", enc, err)
	}
	dec, err := f.svc.DecryptBatch(ctx, app, "transit", DecryptBatchRequest{Key: "env", Items: []DecryptItem{
		{Ciphertext: enc[0].Ciphertext}, {Ciphertext: "garbage"}, {Ciphertext: enc[2].Ciphertext},
	}})
	if err != nil || string(dec[0].Plaintext) != "a" || apierr.Describe(dec[1].Err).Field != "items[1].ciphertext" ||
		apierr.Describe(dec[2].Err).Field != "items[2].ciphertext" {
		t.Fatalf("decrypt batch: %+v %v", dec, err)
	}
	f.rotate(t, "env")
	rw, err := f.svc.RewrapBatch(ctx, app, "transit", RewrapBatchRequest{Key: "env", Items: []DecryptItem{
		{Ciphertext: enc[0].Ciphertext}, {Ciphertext: enc[2].Ciphertext, AssociatedData: []byte("ad")},
	}})
	if err != nil || rw[0].KeyVersion != 2 || rw[1].KeyVersion != 2 || rw[0].Err != nil || rw[1].Err != nil {
		t.Fatalf("rewrap batch: %+v %v", rw, err)
	}
	if _, err := f.svc.EncryptBatch(ctx, app, "transit", EncryptBatchRequest{Key: "env"}); apierr.Describe(err).Field != "items" {
		t.Fatalf("empty batch: %v", err)
	}
	if _, err := f.svc.EncryptBatch(ctx, app, "transit", EncryptBatchRequest{Key: "env", Items: make([]EncryptItem, MaxBatch+1)}); apierr.Describe(err).Field != "items" {
		t.Fatalf("oversized batch: %v", err)
	}
}

// TestKeyManagement covers creation rules, deletion only after
// deletion_allowed, listing, concurrent rotation, and that refused
// requests write nothing.
func TestKeyManagement(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	for field, r := range map[string]CreateKeyRequest{
		"name":    {Name: "bad name"},
		"type":    {Name: "k", Type: "aes128-gcm96"},
		"derived": {Name: "k", Type: "ed25519", Derived: true},
	} {
		before := f.env.Storage("transit").Snapshot()
		if _, err := f.svc.CreateKey(ctx, admin, "transit", r); apierr.Describe(err).Field != field {
			t.Errorf("%s: %v", field, err)
		}
		if !maps.Equal(before, f.env.Storage("transit").Snapshot()) {
			t.Errorf("%s: a refused request wrote", field)
		}
	}
	info, err := f.svc.CreateKey(ctx, app, "transit", CreateKeyRequest{Name: "k"})
	if err != nil || info.Type != AES256GCM96 || info.LatestVersion != 1 || info.MinDecryptionVersion != 1 || info.Exportable {
		t.Fatalf("defaults: %+v %v", info, err)
	}
	if _, err := f.svc.CreateKey(ctx, app, "transit", CreateKeyRequest{Name: "k"}); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("twice: %v", err)
	}
	before := f.env.Storage("transit").Snapshot()
	for field, r := range map[string]KeyConfigRequest{
		"min_decryption_version": {Name: "k", MinDecryptionVersion: ptr(0)},
		"min_encryption_version": {Name: "k", MinEncryptionVersion: ptr(-1)},
		"name":                   {Name: "k/x", DeletionAllowed: ptr(true)},
	} {
		if _, err := f.svc.UpdateKeyConfig(ctx, app, "transit", r); apierr.Describe(err).Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
	if err := f.svc.DeleteKey(ctx, app, "transit", "k"); !errors.Is(err, engine.ErrPrecondition) {
		t.Fatalf("delete without deletion_allowed: %v", err)
	}
	if !maps.Equal(before, f.env.Storage("transit").Snapshot()) {
		t.Fatal("refused changes wrote")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := f.svc.RotateKey(ctx, app, "transit", "k"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if info, _ := f.svc.GetKey(ctx, app, "transit", "k"); info.LatestVersion != 9 {
		t.Fatalf("after 8 concurrent rotations: version %d", info.LatestVersion)
	}
	f.create(t, "j", HMAC, false, false)
	if keys, err := f.svc.ListKeys(ctx, app, "transit"); err != nil || strings.Join(keys, ",") != "j,k" {
		t.Fatalf("list: %v %v", keys, err)
	}
	if _, err := f.svc.UpdateKeyConfig(ctx, app, "transit", KeyConfigRequest{Name: "k", DeletionAllowed: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteKey(ctx, app, "transit", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GetKey(ctx, app, "transit", "k"); apierr.KindOf(err) != apierr.NotFound {
		t.Fatalf("deleted key: %v", err)
	}
}

// TestAuthorization checks an operation-specific rule: logger may
// encrypt with "audit" and nothing else; no caller is unauthenticated;
// another engine's mount is refused.
func TestAuthorization(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	f.create(t, "audit", AES256GCM96, false, false)
	f.create(t, "other", AES256GCM96, false, false)
	ct, err := f.svc.Encrypt(ctx, logger, "transit", EncryptRequest{Key: "audit", Plaintext: []byte("event")})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"decrypt":     second(f.svc.Decrypt(ctx, logger, "transit", DecryptRequest{Key: "audit", Ciphertext: ct.Ciphertext})),
		"rewrap":      second(f.svc.Rewrap(ctx, logger, "transit", RewrapRequest{Key: "audit", Ciphertext: ct.Ciphertext})),
		"other key":   second(f.svc.Encrypt(ctx, logger, "transit", EncryptRequest{Key: "other", Plaintext: []byte("x")})),
		"get":         second(f.svc.GetKey(ctx, logger, "transit", "audit")),
		"list":        second(f.svc.ListKeys(ctx, logger, "transit")),
		"rotate":      second(f.svc.RotateKey(ctx, logger, "transit", "audit")),
		"datakey":     second(f.svc.GenerateDataKey(ctx, logger, "transit", DataKeyRequest{Key: "audit"})),
		"hmac":        second(f.svc.HMAC(ctx, logger, "transit", HMACRequest{Key: "audit"})),
		"batch":       second(f.svc.DecryptBatch(ctx, logger, "transit", DecryptBatchRequest{Key: "audit", Items: []DecryptItem{{Ciphertext: ct.Ciphertext}}})),
		"export":      second(f.svc.ExportKey(ctx, logger, "transit", "audit", 0)),
		"create":      second(f.svc.CreateKey(ctx, logger, "transit", CreateKeyRequest{Name: "mine"})),
		"missing key": second(f.svc.Encrypt(ctx, logger, "transit", EncryptRequest{Key: "nope"})),
	} {
		if !errors.Is(err, engine.ErrDenied) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := f.svc.Encrypt(ctx, engine.Caller{}, "transit", EncryptRequest{Key: "audit"}); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("no caller: %v", err)
	}
	if _, err := f.svc.Encrypt(ctx, admin, "other", EncryptRequest{Key: "audit"}); !errors.Is(err, engine.ErrPrecondition) {
		t.Fatalf("other mount type: %v", err)
	}
	if _, err := f.svc.Encrypt(ctx, admin, "nope", EncryptRequest{Key: "audit"}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("no such mount: %v", err)
	}
}

// TestSealed checks every operation answers engine.ErrSealed while
// sealed.
func TestSealed(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	f.create(t, "k", AES256GCM96, false, false)
	ct, _ := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: "k", Plaintext: []byte("x")})
	f.env.Seal()
	m, _ := f.env.Resolve(ctx, "transit")
	for name, err := range map[string]error{
		"create":  second(f.svc.CreateKey(ctx, admin, "transit", CreateKeyRequest{Name: "j"})),
		"encrypt": second(f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: "k"})),
		"decrypt": second(f.svc.Decrypt(ctx, admin, "transit", DecryptRequest{Key: "k", Ciphertext: ct.Ciphertext})),
		"rotate":  second(f.svc.RotateKey(ctx, admin, "transit", "k")),
		"list":    second(f.svc.ListKeys(ctx, admin, "transit")),
		"handle":  second(f.svc.Handle(ctx, engine.Request{Caller: app, Mount: m, Operation: "encrypt", Data: map[string]any{"key": "k"}})),
	} {
		if !errors.Is(err, engine.ErrSealed) || apierr.KindOf(err) != apierr.Unavailable {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestHandle drives the generic request: base64 fields, batch results,
// the key in the path, and errors naming fields.
func TestHandle(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	m, _ := f.env.Resolve(ctx, "transit")
	do := func(op, path string, data map[string]any) (map[string]any, error) {
		return f.svc.Handle(ctx, engine.Request{Caller: app, Mount: m, Operation: op, Path: path, Data: data})
	}
	b64 := base64.StdEncoding.EncodeToString
	if _, err := do("create-key", "key/k", map[string]any{"type": "aes256-gcm96", "exportable": true}); err != nil {
		t.Fatal(err)
	}
	out, err := do("encrypt", "key/k", map[string]any{"plaintext": b64([]byte("hi")), "associated_data": b64([]byte("ad"))})
	if err != nil || out["key_version"] != float64(1) {
		t.Fatalf("encrypt: %v %v", out, err)
	}
	ct, _ := out["ciphertext"].(string)
	if out, err = do("decrypt", "", map[string]any{"key": "k", "ciphertext": ct, "associated_data": b64([]byte("ad"))}); err != nil || out["plaintext"] != b64([]byte("hi")) {
		t.Fatalf("decrypt: %v %v", out, err)
	}
	out, err = do("decrypt-batch", "key/k", map[string]any{"items": []any{
		map[string]any{"ciphertext": ct, "associated_data": b64([]byte("ad"))}, map[string]any{"ciphertext": ct},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := out["results"].([]any)
	r0, _ := res[0].(map[string]any)
	r1, _ := res[1].(map[string]any)
	if r0["plaintext"] != b64([]byte("hi")) || r1["field"] != "items[1].ciphertext" {
		t.Fatalf("batch: %v", res)
	}
	if out, err = do("rotate-key", "key/k", nil); err != nil || out["latest_version"] != float64(2) {
		t.Fatalf("rotate: %v %v", out, err)
	}
	if out, err = do("rewrap", "key/k", map[string]any{"ciphertext": ct, "associated_data": b64([]byte("ad"))}); err != nil || out["key_version"] != float64(2) {
		t.Fatalf("rewrap: %v %v", out, err)
	}
	if out, err = do("update-key", "key/k", map[string]any{"min_decryption_version": 2, "deletion_allowed": true}); err != nil || out["min_decryption_version"] != float64(2) {
		t.Fatalf("update: %v %v", out, err)
	}
	if out, err = do("export-key", "key/k", map[string]any{"version": 2}); err != nil || len(enginetest.Value[[]any](out, "versions")) != 1 {
		t.Fatalf("export: %v %v", out, err)
	}
	if out, err = do("datakey", "key/k", map[string]any{"include_plaintext": true}); err != nil || out["plaintext"] == nil {
		t.Fatalf("datakey: %v %v", out, err)
	}
	if _, err := do("create-key", "key/s", map[string]any{"type": "ecdsa-p256"}); err != nil {
		t.Fatal(err)
	}
	out, err = do("sign", "key/s", map[string]any{"input": b64([]byte("m"))})
	if err != nil {
		t.Fatal(err)
	}
	if out, err = do("verify", "key/s", map[string]any{"input": b64([]byte("m")), "signature": out["signature"]}); err != nil || out["valid"] != true {
		t.Fatalf("verify: %v %v", out, err)
	}
	out, err = do("hmac", "key/k", map[string]any{"input": b64([]byte("m"))})
	if err != nil {
		t.Fatal(err)
	}
	if out, err = do("verify-hmac", "key/k", map[string]any{"input": b64([]byte("n")), "hmac": out["hmac"]}); err != nil || out["valid"] != false {
		t.Fatalf("verify-hmac: %v %v", out, err)
	}
	if out, err = do("list-keys", "", nil); err != nil || len(enginetest.Value[[]any](out, "keys")) != 2 {
		t.Fatalf("list: %v %v", out, err)
	}
	if _, err := do("delete-key", "key/k", nil); err != nil {
		t.Fatal(err)
	}
	for field, c := range map[string]struct {
		op, path string
		data     map[string]any
	}{
		"operation":              {"frobnicate", "", nil},
		"plaintext":              {"encrypt", "key/s", map[string]any{"plaintext": "not base64!"}},
		"items[0].context":       {"encrypt-batch", "key/s", map[string]any{"items": []any{map[string]any{"context": "%%"}}}},
		"data":                   {"encrypt", "key/s", map[string]any{"plaintext": "", "nonce": "x"}},
		"path":                   {"encrypt", "keys/s", nil},
		"key_version":            {"decrypt-batch", "key/s", map[string]any{"key_version": 1, "items": []any{map[string]any{"ciphertext": "x"}}}},
		"key":                    {"encrypt", "", map[string]any{"plaintext": ""}},
		"min_decryption_version": {"update-key", "key/s", map[string]any{"min_decryption_version": 5}},
	} {
		if _, err := do(c.op, c.path, c.data); apierr.Describe(err).Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// TestRealBarrier runs the engine behind the real mount table, barrier
// and policy: generic requests routed by mount type, a rule for a
// non-admin, ciphertexts surviving a seal and unseal.
func TestRealBarrier(t *testing.T) {
	ctx := t.Context()
	r := enginetest.NewReal(t)
	svc := New(Deps{Mounts: r.Mounts, Authz: r.Policy, Sealed: r.Barrier.Sealed})
	r.Registry.Register(svc)
	if _, err := r.Mounts.Create(ctx, "transit", Type); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Policy.CreateRule(ctx, policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"app"}},
		Operations: []string{"*"}, Resources: []string{"key/app-*"}}); err != nil {
		t.Fatal(err)
	}
	req := func(c engine.Caller, op string, data map[string]any) (map[string]any, error) {
		return r.Mounts.Request(ctx, "transit", engine.Request{Caller: c, Operation: op, Data: data})
	}
	if _, err := req(app, "create-key", map[string]any{"name": "app-data"}); err != nil {
		t.Fatal(err)
	}
	if _, err := req(app, "create-key", map[string]any{"name": "other"}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("outside the rule: %v", err)
	}
	out, err := req(app, "encrypt", map[string]any{"key": "app-data", "plaintext": "aGVsbG8="})
	if err != nil {
		t.Fatal(err)
	}
	r.Barrier.Seal()
	if _, err := req(app, "decrypt", map[string]any{"key": "app-data", "ciphertext": out["ciphertext"]}); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("sealed: %v", err)
	}
	if _, err := svc.Decrypt(ctx, app, "transit", DecryptRequest{Key: "app-data", Ciphertext: enginetest.Value[string](out, "ciphertext")}); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("sealed typed: %v", err)
	}
	if err := r.Barrier.Unseal(ctx, []byte(enginetest.Password)); err != nil {
		t.Fatal(err)
	}
	p, err := svc.Decrypt(ctx, app, "transit", DecryptRequest{Key: "app-data", Ciphertext: enginetest.Value[string](out, "ciphertext")})
	if err != nil || string(p.Plaintext) != "hello" {
		t.Fatalf("after unseal: %v", err)
	}
}
