package sshca

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/enginetest"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

var (
	admin = engine.Caller{Username: "admin", Roles: []string{engine.RoleAdmin}}
	alice = engine.Caller{Username: "alice", Roles: []string{"user"}}
	bob   = engine.Caller{Username: "bob", Roles: []string{"user"}}
)

type fixture struct {
	svc   *Service
	env   *enginetest.Env
	clock *time.Time
}

// newFixture is the engine over in-memory mounts "ssh" (an Ed25519 CA
// with profile "users": {{username}} only, permit-pty by default,
// permit-port-forwarding on request, force-command and source-address on
// request) and "other" (a transit-like mount of another type), with an
// ACL letting every user sign and revoke under "users" and read certs.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := enginetest.New()
	env.Mount("ssh", Type)
	env.Mount("other", "transit")
	now := time.Now().UTC()
	f := &fixture{env: env, clock: &now}
	f.svc = New(Deps{Mounts: env, Authz: env, Sealed: env.Sealed, Now: func() time.Time { return *f.clock }})
	if _, err := f.svc.GenerateCA(t.Context(), admin, "ssh", CARequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateProfile(t.Context(), admin, "ssh", ProfileRequest{
		Name: "users", CertType: "user", AllowedPrincipals: []string{"{{username}}"}, DefaultPrincipals: []string{"{{username}}"},
		MaxTTL: "8h", DefaultExtensions: []string{"permit-pty"}, AllowedExtensions: []string{"permit-pty", "permit-port-forwarding"},
		AllowedCriticalOptions: []string{OptionForceCommand, OptionSourceAddress},
	}); err != nil {
		t.Fatal(err)
	}
	env.Rule(policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Roles: []string{"user"}}, Mounts: []string{"ssh"},
		Operations: []string{policy.OpSign, policy.OpRevoke, policy.OpRead}, Resources: []string{"profile/users", "certs"}})
	return f
}

// newKey is a fresh Ed25519 key and its public key line.
func newKey(t testing.TB) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, authorized(t, pub)
}

func authorized(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	p, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(p))
}

func rsaKey(t testing.TB, bits int) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return authorized(t, k.Public())
}

func parseCert(t testing.TB, s string) *ssh.Certificate {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("not a certificate: %T", pub)
	}
	return c
}

// TestCAKeyTypes signs with a CA of every key type and checks the
// certificate with x/crypto's checker against the CA's published key.
func TestCAKeyTypes(t *testing.T) {
	ctx := t.Context()
	for _, kt := range []string{"", "ec-p256", "ec-p384", "rsa-3072"} {
		t.Run(kt, func(t *testing.T) {
			env := enginetest.New()
			env.Mount("ssh", Type)
			svc := New(Deps{Mounts: env, Authz: env, Sealed: env.Sealed})
			info, err := svc.GenerateCA(ctx, admin, "ssh", CARequest{KeyType: kt})
			if err != nil {
				t.Fatal(err)
			}
			if kt == "" && info.KeyType != "ed25519" {
				t.Fatalf("default key type %s", info.KeyType)
			}
			if _, err := svc.CreateProfile(ctx, admin, "ssh", ProfileRequest{Name: "p", CertType: "user", AllowedPrincipals: []string{"*"}}); err != nil {
				t.Fatal(err)
			}
			_, pub := newKey(t)
			signed, err := svc.Sign(ctx, admin, "ssh", SignRequest{Profile: "p", PublicKey: pub, Principals: []string{"deploy"}})
			if err != nil {
				t.Fatal(err)
			}
			caPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(info.PublicKey))
			if err != nil {
				t.Fatal(err)
			}
			cert := parseCert(t, signed.Certificate)
			checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(caPub.Marshal()) }}
			if _, err := checker.Authenticate(connMeta("deploy"), cert); err != nil {
				t.Fatalf("checker: %v", err)
			}
			if cert.Serial != 1 || signed.Record.Serial != 1 || cert.KeyId != "admin" {
				t.Fatalf("serial %d, key ID %q", cert.Serial, cert.KeyId)
			}
			if f := cert.Signature.Format; kt == "rsa-3072" && f != ssh.KeyAlgoRSASHA512 && f != ssh.KeyAlgoRSASHA256 {
				t.Fatalf("RSA CA signs with %s", cert.Signature.Format)
			}
			if _, err := svc.GenerateCA(ctx, admin, "ssh", CARequest{}); apierr.KindOf(err) != apierr.Conflict {
				t.Fatalf("second CA: %v", err)
			}
		})
	}
}

type connMeta string

func (c connMeta) User() string        { return string(c) }
func (connMeta) SessionID() []byte     { return nil }
func (connMeta) ClientVersion() []byte { return nil }
func (connMeta) ServerVersion() []byte { return nil }
func (connMeta) RemoteAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222} }
func (connMeta) LocalAddr() net.Addr   { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22} }

// TestSignUnderProfile checks what a profile puts in a certificate and
// that serials count up per mount.
func TestSignUnderProfile(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	_, pub := newKey(t)
	s, err := f.svc.Sign(ctx, alice, "ssh", SignRequest{Profile: "users", PublicKey: pub, TTL: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, s.Certificate)
	now := *f.clock
	if c.CertType != ssh.UserCert || len(c.ValidPrincipals) != 1 || c.ValidPrincipals[0] != "alice" || c.KeyId != "alice" ||
		c.ValidBefore != uint64(now.Add(2*time.Hour).Unix()) || c.ValidAfter != uint64(now.Add(-backdate).Unix()) {
		t.Fatalf("certificate: %+v", c)
	}
	if !maps.Equal(c.Extensions, map[string]string{"permit-pty": ""}) || len(c.CriticalOptions) != 0 {
		t.Fatalf("extensions %v, options %v", c.Extensions, c.CriticalOptions)
	}
	s2, err := f.svc.Sign(ctx, alice, "ssh", SignRequest{Profile: "users", PublicKey: pub, Principals: []string{"alice"}, TTL: "8h",
		Extensions: []string{"permit-port-forwarding"}, CriticalOptions: map[string]string{"force-command": "uptime", "source-address": "10.0.0.1, 192.168.1.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	c2 := parseCert(t, s2.Certificate)
	if c2.Serial != 2 || !maps.Equal(c2.Extensions, map[string]string{"permit-port-forwarding": ""}) ||
		c2.CriticalOptions["source-address"] != "10.0.0.1/32,192.168.1.0/24" || c2.CriticalOptions["force-command"] != "uptime" {
		t.Fatalf("second: serial %d %v %v", c2.Serial, c2.Extensions, c2.CriticalOptions)
	}
	got, err := f.svc.GetCertificate(ctx, alice, "ssh", "2")
	if err != nil || got.Certificate != s2.Certificate || got.RequestedBy != "alice" || got.KeyFingerprint != ssh.FingerprintSHA256(c2.Key) {
		t.Fatalf("get: %+v %v", got, err)
	}
	list, err := f.svc.ListCertificates(ctx, alice, "ssh", ListRequest{Principal: "alice"})
	if err != nil || len(list) != 2 || list[0].Serial != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	*f.clock = f.clock.Add(3 * time.Hour)
	if list, _ := f.svc.ListCertificates(ctx, alice, "ssh", ListRequest{Status: "expired"}); len(list) != 1 || list[0].Serial != 1 {
		t.Fatalf("expired: %+v", list)
	}
}

// TestSignRefusals checks each profile limit refuses with an error naming
// the field, and that a refused request writes nothing.
func TestSignRefusals(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	if _, err := f.svc.CreateProfile(ctx, admin, "ssh", ProfileRequest{Name: "strict", CertType: "user", AllowedPrincipals: []string{"ops-*"},
		KeyTypes: []string{ssh.KeyAlgoRSA}, CriticalOptions: map[string]string{"force-command": "true"}}); err != nil {
		t.Fatal(err)
	}
	_, pub := newKey(t)
	rsaPub, rsaSmall := rsaKey(t, 2048), rsaKey(t, 1024)
	certLine := func() string {
		s, err := f.svc.Sign(ctx, alice, "ssh", SignRequest{Profile: "users", PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		return s.Certificate
	}()
	for _, c := range []struct {
		name   string
		caller engine.Caller
		req    SignRequest
		kind   apierr.Kind
		field  string
	}{
		{"other's principal", alice, SignRequest{Profile: "users", PublicKey: pub, Principals: []string{"bob"}}, apierr.Denied, "principals[0]"},
		{"root", alice, SignRequest{Profile: "users", PublicKey: pub, Principals: []string{"alice", "root"}}, apierr.Denied, "principals[1]"},
		{"admin bound too", admin, SignRequest{Profile: "users", PublicKey: pub, Principals: []string{"root"}}, apierr.Denied, "principals[0]"},
		{"pattern", admin, SignRequest{Profile: "strict", PublicKey: rsaPub, Principals: []string{"ops"}}, apierr.Denied, "principals[0]"},
		{"bad principal", admin, SignRequest{Profile: "users", PublicKey: pub, Principals: []string{"a b"}}, apierr.Invalid, "principals[0]"},
		{"ttl", alice, SignRequest{Profile: "users", PublicKey: pub, TTL: "9h"}, apierr.Invalid, "ttl"},
		{"ttl syntax", alice, SignRequest{Profile: "users", PublicKey: pub, TTL: "soon"}, apierr.Invalid, "ttl"},
		{"extension", alice, SignRequest{Profile: "users", PublicKey: pub, Extensions: []string{"permit-agent-forwarding"}}, apierr.Invalid, "extensions[0]"},
		{"fixed option", admin, SignRequest{Profile: "strict", PublicKey: rsaPub, Principals: []string{"ops-1"}, CriticalOptions: map[string]string{"force-command": "sh"}}, apierr.Invalid, "critical_options.force-command"},
		{"source address", alice, SignRequest{Profile: "users", PublicKey: pub, CriticalOptions: map[string]string{"source-address": "nowhere"}}, apierr.Invalid, "critical_options.source-address"},
		{"key type", admin, SignRequest{Profile: "strict", PublicKey: pub, Principals: []string{"ops-1"}}, apierr.Invalid, "public_key"},
		{"rsa bits", admin, SignRequest{Profile: "strict", PublicKey: rsaSmall, Principals: []string{"ops-1"}}, apierr.Invalid, "public_key"},
		{"certificate as key", alice, SignRequest{Profile: "users", PublicKey: certLine}, apierr.Invalid, "public_key"},
		{"garbage key", alice, SignRequest{Profile: "users", PublicKey: "ssh-ed25519 AAAA"}, apierr.Invalid, "public_key"},
		{"two keys", alice, SignRequest{Profile: "users", PublicKey: pub + pub}, apierr.Invalid, "public_key"},
		{"options", alice, SignRequest{Profile: "users", PublicKey: "no-pty " + pub}, apierr.Invalid, "public_key"},
		{"profile name", alice, SignRequest{Profile: "Users", PublicKey: pub}, apierr.Invalid, "profile"},
		{"no such profile", admin, SignRequest{Profile: "nope", PublicKey: pub}, apierr.NotFound, ""},
		{"no rule", bob, SignRequest{Profile: "strict", PublicKey: pub}, apierr.Denied, ""},
		{"no caller", engine.Caller{}, SignRequest{Profile: "users", PublicKey: pub}, apierr.Unauthenticated, ""},
	} {
		before := f.env.Storage("ssh").Snapshot()
		_, err := f.svc.Sign(ctx, c.caller, "ssh", c.req)
		if d := apierr.Describe(err); d.Kind != c.kind || d.Field != c.field {
			t.Errorf("%s: %v (kind %v field %q)", c.name, err, d.Kind, d.Field)
		}
		if !maps.Equal(before, f.env.Storage("ssh").Snapshot()) {
			t.Errorf("%s: a refused request wrote", c.name)
		}
	}
	s, err := f.svc.Sign(ctx, admin, "ssh", SignRequest{Profile: "strict", PublicKey: rsaPub, Principals: []string{"ops-1"}})
	if err != nil || parseCert(t, s.Certificate).CriticalOptions["force-command"] != "true" {
		t.Fatalf("strict: %v", err)
	}
	if _, err := f.svc.Sign(ctx, alice, "other", SignRequest{Profile: "users", PublicKey: pub}); !errors.Is(err, engine.ErrPrecondition) {
		t.Fatalf("other mount type: %v", err)
	}
}

// TestProfileValidation checks every profile field is validated with an
// error naming it, before anything is written.
func TestProfileValidation(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	base := func(mod func(r *ProfileRequest)) ProfileRequest {
		r := ProfileRequest{Name: "p", CertType: "user", AllowedPrincipals: []string{"{{username}}"}}
		mod(&r)
		return r
	}
	for field, r := range map[string]ProfileRequest{
		"name":                           base(func(r *ProfileRequest) { r.Name = "-x" }),
		"cert_type":                      base(func(r *ProfileRequest) { r.CertType = "robot" }),
		"allowed_principals":             base(func(r *ProfileRequest) { r.AllowedPrincipals = nil }),
		"allowed_principals[0]":          base(func(r *ProfileRequest) { r.AllowedPrincipals = []string{"{{user}}"} }),
		"default_principals[0]":          base(func(r *ProfileRequest) { r.DefaultPrincipals = []string{"a*"} }),
		"max_ttl":                        base(func(r *ProfileRequest) { r.MaxTTL = "-1h" }),
		"default_ttl":                    base(func(r *ProfileRequest) { r.MaxTTL, r.DefaultTTL = "1h", "2h" }),
		"default_extensions[0]":          base(func(r *ProfileRequest) { r.DefaultExtensions = []string{"permit-everything"} }),
		"allowed_extensions[1]":          base(func(r *ProfileRequest) { r.AllowedExtensions = []string{"permit-pty", "x@"} }),
		"critical_options.verify":        base(func(r *ProfileRequest) { r.CriticalOptions = map[string]string{"verify": ""} }),
		"critical_options.force-command": base(func(r *ProfileRequest) { r.CriticalOptions = map[string]string{"force-command": "a\nb"} }),
		"allowed_critical_options[0]":    base(func(r *ProfileRequest) { r.AllowedCriticalOptions = []string{"no-pty"} }),
		"key_types[0]":                   base(func(r *ProfileRequest) { r.KeyTypes = []string{"ssh-dss"} }),
		"min_rsa_bits":                   base(func(r *ProfileRequest) { r.MinRSABits = 1024 }),
		"default_extensions":             base(func(r *ProfileRequest) { r.CertType, r.DefaultExtensions = "host", []string{"permit-pty"} }),
	} {
		before := f.env.Storage("ssh").Snapshot()
		_, err := f.svc.CreateProfile(ctx, admin, "ssh", r)
		if d := apierr.Describe(err); d.Kind != apierr.Invalid || d.Field != field {
			t.Errorf("%s: %v (field %q)", field, err, d.Field)
		}
		if !maps.Equal(before, f.env.Storage("ssh").Snapshot()) {
			t.Errorf("%s: a refused profile was written", field)
		}
	}
	p, err := f.svc.CreateProfile(ctx, admin, "ssh", ProfileRequest{Name: "hosts", CertType: "host", AllowedPrincipals: []string{"*.svc.test"}})
	if err != nil || p.MaxTTL != DefaultHostMaxTTL || p.DefaultTTL != DefaultHostDefaultTTL || len(p.KeyTypes) != len(KeyTypes) || p.MinRSABits != DefaultMinRSABits {
		t.Fatalf("host defaults: %+v %v", p, err)
	}
	if _, err := f.svc.CreateProfile(ctx, admin, "ssh", ProfileRequest{Name: "hosts", CertType: "host", AllowedPrincipals: []string{"x"}}); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := f.svc.UpdateProfile(ctx, admin, "ssh", ProfileRequest{Name: "hosts", CertType: "host", AllowedPrincipals: []string{"*.other.test"}, MaxTTL: "1d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.UpdateProfile(ctx, admin, "ssh", ProfileRequest{Name: "ghost", CertType: "host", AllowedPrincipals: []string{"x"}}); apierr.KindOf(err) != apierr.NotFound {
		t.Fatalf("update missing: %v", err)
	}
	got, err := f.svc.GetProfile(ctx, alice, "ssh", "users")
	if err != nil || got.MaxTTL != 8*time.Hour {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := f.svc.GetProfile(ctx, alice, "ssh", "hosts"); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("read without rule: %v", err)
	}
	if list, err := f.svc.ListProfiles(ctx, admin, "ssh"); err != nil || len(list) != 2 || list[0].Name != "hosts" || list[0].MaxTTL != 24*time.Hour {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := f.svc.DeleteProfile(ctx, alice, "ssh", "users"); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("delete as user: %v", err)
	}
	if err := f.svc.DeleteProfile(ctx, admin, "ssh", "hosts"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GetProfile(ctx, admin, "ssh", "hosts"); apierr.KindOf(err) != apierr.NotFound {
		t.Fatalf("deleted: %v", err)
	}
}

// TestHostProfile signs a host certificate for a matching name only.
func TestHostProfile(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	if _, err := f.svc.CreateProfile(ctx, admin, "ssh", ProfileRequest{Name: "hosts", CertType: "host", AllowedPrincipals: []string{"*.svc.test"}}); err != nil {
		t.Fatal(err)
	}
	_, pub := newKey(t)
	s, err := f.svc.Sign(ctx, admin, "ssh", SignRequest{Profile: "hosts", PublicKey: pub, Principals: []string{"a.svc.test", "b.c.svc.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := parseCert(t, s.Certificate); c.CertType != ssh.HostCert || len(c.Extensions) != 0 || s.Record.ValidBefore.Sub(s.Record.ValidAfter) != DefaultHostDefaultTTL+backdate {
		t.Fatalf("host cert: %+v", c)
	}
	for field, r := range map[string]SignRequest{
		"principals[0]":    {Profile: "hosts", PublicKey: pub, Principals: []string{"svc.test.evil"}},
		"principals":       {Profile: "hosts", PublicKey: pub},
		"extensions":       {Profile: "hosts", PublicKey: pub, Principals: []string{"a.svc.test"}, Extensions: []string{"permit-pty"}},
		"critical_options": {Profile: "hosts", PublicKey: pub, Principals: []string{"a.svc.test"}, CriticalOptions: map[string]string{"force-command": "x"}},
	} {
		if _, err := f.svc.Sign(ctx, admin, "ssh", r); apierr.Describe(err).Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// TestRevocation revokes by each means, checks the records, the
// conflicts and the KRL's contents and versions, and who may revoke.
func TestRevocation(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	sign := func(c engine.Caller, pub string) Certificate {
		t.Helper()
		s, err := f.svc.Sign(ctx, c, "ssh", SignRequest{Profile: "users", PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		return s.Record
	}
	_, k1 := newKey(t)
	_, k2 := newKey(t)
	_, k3 := newKey(t)
	c1, c2, c3, c4 := sign(alice, k1), sign(alice, k2), sign(alice, k2), sign(bob, k3)
	k0, err := f.svc.KRL(ctx, "ssh")
	if err != nil || k0.Version != 1 {
		t.Fatalf("initial KRL: %+v %v", k0, err)
	}
	if _, err := f.svc.Revoke(ctx, bob, "ssh", RevokeRequest{Serial: "1"}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("bob revokes alice's: %v", err)
	}
	if _, err := f.svc.Revoke(ctx, alice, "ssh", RevokeRequest{Serial: "99"}); apierr.KindOf(err) != apierr.NotFound {
		t.Fatalf("unknown serial: %v", err)
	}
	r, err := f.svc.Revoke(ctx, alice, "ssh", RevokeRequest{Serial: "1"})
	if err != nil || r.KRLVersion != 2 || len(r.Serials) != 1 || r.Serials[0] != c1.Serial {
		t.Fatalf("revoke serial: %+v %v", r, err)
	}
	if _, err := f.svc.Revoke(ctx, alice, "ssh", RevokeRequest{Serial: "1"}); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("twice: %v", err)
	}
	if _, err := f.svc.Revoke(ctx, alice, "ssh", RevokeRequest{PublicKey: k2}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("user revokes a key: %v", err)
	}
	r, err = f.svc.Revoke(ctx, admin, "ssh", RevokeRequest{PublicKey: k2})
	if err != nil || r.KRLVersion != 3 || len(r.Serials) != 2 || r.Serials[0] != c2.Serial || r.Serials[1] != c3.Serial {
		t.Fatalf("revoke key: %+v %v", r, err)
	}
	pk3, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(k3))
	r, err = f.svc.Revoke(ctx, admin, "ssh", RevokeRequest{Fingerprint: ssh.FingerprintSHA256(pk3)})
	if err != nil || len(r.Serials) != 1 || r.Serials[0] != c4.Serial {
		t.Fatalf("revoke fingerprint: %+v %v", r, err)
	}
	if r, err = f.svc.Revoke(ctx, admin, "ssh", RevokeRequest{KeyID: "carol"}); err != nil || len(r.Serials) != 0 || r.KRLVersion != 5 {
		t.Fatalf("revoke key ID: %+v %v", r, err)
	}
	for field, req := range map[string]RevokeRequest{
		"serial":      {},
		"public_key":  {Serial: "1", PublicKey: k1},
		"fingerprint": {Fingerprint: "SHA256:abc"},
		"key_id":      {KeyID: "a\x00b"},
	} {
		if _, err := f.svc.Revoke(ctx, admin, "ssh", req); apierr.Describe(err).Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
	for _, s := range []uint64{c1.Serial, c2.Serial, c3.Serial, c4.Serial} {
		if rec, _ := loadCert(ctx, mustMount(t, f), s); rec.RevokedAt == nil {
			t.Errorf("serial %d not marked revoked", s)
		}
	}
	k, err := f.svc.KRL(ctx, "ssh")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseKRL(k.KRL)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := f.svc.GetCA(ctx, "ssh")
	caPub, _ := caPublicKey(ca)
	if got.Version != 5 || string(got.CAKey) != string(caPub.Marshal()) || len(got.Serials) != 1 || got.Serials[0] != 1 ||
		len(got.Keys) != 1 || len(got.SHA256) != 1 || len(got.KeyIDs) != 1 || got.KeyIDs[0] != "carol" {
		t.Fatalf("KRL: %+v", got)
	}
	f.env.Seal()
	if _, err := f.svc.KRL(ctx, "ssh"); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("sealed KRL: %v", err)
	}
}

func mustMount(t *testing.T, f *fixture) engine.Mount {
	t.Helper()
	m, err := f.env.Resolve(t.Context(), "ssh")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSealed checks every operation answers engine.ErrSealed while
// sealed, before anything else.
func TestSealed(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	f.env.Seal()
	_, pub := newKey(t)
	for op, err := range map[string]error{
		"generate-ca": second(f.svc.GenerateCA(ctx, admin, "ssh", CARequest{})),
		"get-ca":      second(f.svc.GetCA(ctx, "ssh")),
		"sign":        second(f.svc.Sign(ctx, alice, "ssh", SignRequest{Profile: "users", PublicKey: pub})),
		"revoke":      second(f.svc.Revoke(ctx, admin, "ssh", RevokeRequest{Serial: "1"})),
		"list":        second(f.svc.ListCertificates(ctx, admin, "ssh", ListRequest{})),
		"handle":      second(f.svc.Handle(ctx, engine.Request{Caller: admin, Mount: mustMount(t, f), Operation: "list-profiles"})),
	} {
		if !errors.Is(err, engine.ErrSealed) {
			t.Errorf("%s: %v", op, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestHandle drives the generic request: every operation, the path
// naming the resource, strict decoding.
func TestHandle(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	m := mustMount(t, f)
	do := func(c engine.Caller, op, path string, data map[string]any) (map[string]any, error) {
		return f.svc.Handle(ctx, engine.Request{Caller: c, Mount: m, Operation: op, Path: path, Data: data})
	}
	_, pub := newKey(t)
	out, err := do(alice, "sign", "profile/users", map[string]any{"public_key": pub, "ttl": "1h"})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := out["record"].(map[string]any)
	if !strings.HasPrefix(enginetest.Value[string](out, "certificate"), "ssh-ed25519-cert-v01@openssh.com ") || rec["serial"] != float64(1) {
		t.Fatalf("sign: %v", out)
	}
	if out, err = do(alice, "get", "cert/1", nil); err != nil || enginetest.Value[map[string]any](out, "certificate")["key_id"] != "alice" {
		t.Fatalf("get: %v %v", out, err)
	}
	if out, err = do(admin, "get-profile", "", map[string]any{"name": "users"}); err != nil || enginetest.Value[map[string]any](out, "profile")["max_ttl"] != "8h0m0s" {
		t.Fatalf("get-profile: %v %v", out, err)
	}
	if out, err = do(admin, "create-profile", "profile/ops", map[string]any{"cert_type": "user", "allowed_principals": []any{"ops"}, "max_ttl": "1d"}); err != nil || enginetest.Value[map[string]any](out, "profile")["max_ttl"] != "1d" {
		t.Fatalf("create-profile: %v %v", out, err)
	}
	if out, err = do(admin, "list-profiles", "", nil); err != nil || len(enginetest.Value[[]any](out, "profiles")) != 2 {
		t.Fatalf("list-profiles: %v %v", out, err)
	}
	if out, err = do(bob, "get-ca", "", nil); err != nil || !strings.HasPrefix(enginetest.Value[string](out, "public_key"), "ssh-ed25519 ") {
		t.Fatalf("get-ca: %v %v", out, err)
	}
	if out, err = do(admin, "revoke", "cert/1", nil); err != nil || out["krl_version"] != float64(2) {
		t.Fatalf("revoke: %v %v", out, err)
	}
	if out, err = do(bob, "krl", "", nil); err != nil || out["version"] != float64(2) {
		t.Fatalf("krl: %v %v", out, err)
	}
	if out, err = do(alice, "list", "", map[string]any{"status": "revoked"}); err != nil || len(enginetest.Value[[]any](out, "certificates")) != 1 {
		t.Fatalf("list: %v %v", out, err)
	}
	if _, err = do(admin, "delete-profile", "profile/ops", nil); err != nil {
		t.Fatal(err)
	}
	for field, c := range map[string]struct {
		op, path string
		data     map[string]any
	}{
		"operation": {"frobnicate", "", nil},
		"data":      {"sign", "", map[string]any{"profile": "users", "public_key": pub, "colour": "red"}},
		"path":      {"sign", "profile/ops", map[string]any{"profile": "users", "public_key": pub}},
	} {
		if _, err := do(admin, c.op, c.path, c.data); apierr.Describe(err).Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
	if _, err := do(admin, "list", "cert/1", nil); apierr.Describe(err).Field != "path" {
		t.Errorf("path on list: %v", err)
	}
}

// TestRealBarrier runs the engine behind the real mount table, barrier
// and policy: a generic request routed by mount type, the policy's rule
// for the user, and a seal.
func TestRealBarrier(t *testing.T) {
	ctx := t.Context()
	r := enginetest.NewReal(t)
	svc := New(Deps{Mounts: r.Mounts, Authz: r.Policy, Sealed: r.Barrier.Sealed})
	r.Registry.Register(svc)
	if _, err := r.Mounts.Create(ctx, "ssh", Type); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Policy.CreateRule(ctx, policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"alice"}},
		Operations: []string{policy.OpSign}, Resources: []string{"profile/users"}}); err != nil {
		t.Fatal(err)
	}
	req := func(c engine.Caller, op string, data map[string]any) (map[string]any, error) {
		return r.Mounts.Request(ctx, "ssh", engine.Request{Caller: c, Operation: op, Data: data})
	}
	if _, err := req(admin, "generate-ca", map[string]any{"key_type": "ec-p256"}); err != nil {
		t.Fatal(err)
	}
	if _, err := req(admin, "create-profile", map[string]any{"name": "users", "cert_type": "user", "allowed_principals": []any{"{{username}}"}, "default_principals": []any{"{{username}}"}}); err != nil {
		t.Fatal(err)
	}
	_, pub := newKey(t)
	out, err := req(alice, "sign", map[string]any{"profile": "users", "public_key": pub})
	if err != nil {
		t.Fatal(err)
	}
	if c := parseCert(t, enginetest.Value[string](out, "certificate")); c.ValidPrincipals[0] != "alice" || c.SignatureKey.Type() != ssh.KeyAlgoECDSA256 {
		t.Fatalf("cert: %+v", c)
	}
	if _, err := req(alice, "revoke", map[string]any{"serial": "1"}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("revoke without rule: %v", err)
	}
	r.Barrier.Seal()
	if _, err := svc.Sign(ctx, alice, "ssh", SignRequest{Profile: "users", PublicKey: pub}); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("sealed: %v", err)
	}
	if err := r.Barrier.Unseal(ctx, []byte(enginetest.Password)); err != nil {
		t.Fatal(err)
	}
	if k, err := svc.KRL(ctx, "ssh"); err != nil || k.Version != 1 {
		t.Fatalf("KRL after unseal: %+v %v", k, err)
	}
}

func TestMatchPattern(t *testing.T) {
	for _, c := range []struct {
		pattern, s, user string
		want             bool
	}{
		{"{{username}}", "alice", "alice", true},
		{"{{username}}", "bob", "alice", false},
		{"{{username}}", "alice", "", false},
		{"{{username}}-admin", "alice-admin", "alice", true},
		{"*.svc.test", "a.svc.test", "", true},
		{"*.svc.test", "a.b.svc.test", "", true},
		{"*.svc.test", "svc.test", "", false},
		{"*.svc.test", "a.svc.test.evil", "", false},
		{"{{username}}", "a.b", "a*", false},
		{"{{username}}", "a*", "a*", true},
		{"a.b", "axb", "", false},
		{"*", "anything", "", true},
	} {
		if got := matchPattern(c.pattern, c.s, c.user); got != c.want {
			t.Errorf("match(%q, %q, user %q) = %v", c.pattern, c.s, c.user, got)
		}
	}
}
