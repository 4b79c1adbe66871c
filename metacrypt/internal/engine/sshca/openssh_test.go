package sshca

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/opensshtest"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// TestOpenSSHLogin is the SSH CA against real OpenSSH: an sshd trusting
// three mounts' CA keys (Ed25519, ECDSA P-384, RSA 3072) with the Ed25519
// mount's KRL as RevokedKeys, presenting a host certificate from a fourth
// mount. ssh logs in with each CA's user certificate, checking the host
// certificate through an @cert-authority line with
// StrictHostKeyChecking=yes; the critical options are enforced; after
// revocation by serial, then by key, the same logins are refused; a host
// CA the client does not know is refused.
func TestOpenSSHLogin(t *testing.T) {
	tools := opensshtest.Require(t)
	ctx := t.Context()
	f := newFixture(t)
	dir := t.TempDir()
	osUser, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	login := osUser.Username

	f.env.Rule(policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"alice"}}, Mounts: []string{"ssh-*"},
		Operations: []string{policy.OpSign}, Resources: []string{"profile/users"}})
	var trusted strings.Builder
	for _, kt := range []string{"ec-p384", "rsa-3072"} {
		f.env.Mount("ssh-"+kt, Type)
		if _, err := f.svc.GenerateCA(ctx, admin, "ssh-"+kt, CARequest{KeyType: kt}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CreateProfile(ctx, admin, "ssh-"+kt, ProfileRequest{Name: "users", CertType: "user",
			AllowedPrincipals: []string{"{{username}}"}, DefaultPrincipals: []string{"{{username}}"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"ssh", "ssh-ec-p384", "ssh-rsa-3072"} {
		ca, err := f.svc.GetCA(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		trusted.WriteString(ca.PublicKey)
	}
	userCAs := opensshtest.WriteFile(t, filepath.Join(dir, "user_ca.pub"), trusted.String())
	krlFile := filepath.Join(dir, "revoked.krl")
	writeKRL := func() {
		t.Helper()
		k, err := f.svc.KRL(ctx, "ssh")
		if err != nil {
			t.Fatal(err)
		}
		opensshtest.WriteFile(t, krlFile, string(k.KRL))
	}
	writeKRL()
	principals := opensshtest.WriteFile(t, filepath.Join(dir, "principals"), "alice\n")

	// The host: its key, certified by the host CA mount for sshd.test.
	f.env.Mount("ssh-hosts", Type)
	hostCA, err := f.svc.GenerateCA(ctx, admin, "ssh-hosts", CARequest{KeyType: "ec-p256"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateProfile(ctx, admin, "ssh-hosts", ProfileRequest{Name: "hosts", CertType: "host", AllowedPrincipals: []string{"*.test"}}); err != nil {
		t.Fatal(err)
	}
	hostPriv, hostPub := newKey(t)
	hostKey := opensshtest.WriteKey(t, dir, "host_key", hostPriv)
	hostCert, err := f.svc.Sign(ctx, admin, "ssh-hosts", SignRequest{Profile: "hosts", PublicKey: hostPub, Principals: []string{"sshd.test"}})
	if err != nil {
		t.Fatal(err)
	}
	opensshtest.WriteFile(t, hostKey+"-cert.pub", hostCert.Certificate+"\n")
	knownHosts := opensshtest.WriteFile(t, filepath.Join(dir, "known_hosts"), "@cert-authority sshd.test "+hostCA.PublicKey)

	srv := opensshtest.StartSSHD(t, tools, dir, []string{
		"HostKey " + hostKey, "HostCertificate " + hostKey + "-cert.pub",
		"TrustedUserCAKeys " + userCAs, "RevokedKeys " + krlFile, "AuthorizedPrincipalsFile " + principals,
	})

	// signed makes a key and alice's certificate for it from a mount.
	signed := func(mount, name string, r SignRequest) (key, cert string) {
		t.Helper()
		priv, pub := newKey(t)
		key = opensshtest.WriteKey(t, dir, name, priv)
		r.Profile, r.PublicKey = "users", pub
		s, err := f.svc.Sign(ctx, alice, mount, r)
		if err != nil {
			t.Fatal(err)
		}
		return key, opensshtest.WriteFile(t, key+"-cert.pub", s.Certificate+"\n")
	}
	loginOK := func(key, cert, want string) {
		t.Helper()
		out, err := srv.Login(t, dir, login, key, cert, knownHosts, "echo", "hello")
		if err != nil || strings.TrimSpace(out) != want {
			t.Fatalf("login with %s: %v\n%s", filepath.Base(cert), err, out)
		}
	}
	refused := func(key, cert string) {
		t.Helper()
		out, err := srv.Login(t, dir, login, key, cert, knownHosts, "echo", "hello")
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("login with %s not refused: %v\n%s", filepath.Base(cert), err, out)
		}
	}

	key1, cert1 := signed("ssh", "id_serial", SignRequest{})
	loginOK(key1, cert1, "hello")
	for _, m := range []string{"ssh-ec-p384", "ssh-rsa-3072"} {
		k, c := signed(m, "id_"+m, SignRequest{})
		loginOK(k, c, "hello")
	}
	if !strings.Contains(srv.Logs.String(), `ID alice (serial 1)`) {
		t.Errorf("sshd did not log the key ID and serial")
	}

	// Critical options: force-command replaces the command;
	// source-address refuses other clients.
	kf, cf := signed("ssh", "id_forced", SignRequest{CriticalOptions: map[string]string{"force-command": "echo forced", "source-address": "127.0.0.0/8"}})
	loginOK(kf, cf, "forced")
	ks, cs := signed("ssh", "id_elsewhere", SignRequest{CriticalOptions: map[string]string{"source-address": "192.0.2.0/24"}})
	refused(ks, cs)
	// A key without a certificate is not in any authorized_keys file.
	plain, _ := newKey(t)
	refused(opensshtest.WriteKey(t, dir, "id_plain", plain), "")

	// Revocation by serial.
	if _, err := f.svc.Revoke(ctx, alice, "ssh", RevokeRequest{Serial: "1"}); err != nil {
		t.Fatal(err)
	}
	writeKRL()
	refused(key1, cert1)
	if !opensshtest.KeygenQuery(t, tools, krlFile, cert1) {
		t.Fatal("ssh-keygen -Q: the certificate revoked by serial is ok")
	}

	// Revocation by key.
	key2, cert2 := signed("ssh", "id_key", SignRequest{})
	loginOK(key2, cert2, "hello")
	pub2, err := os.ReadFile(cert2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Revoke(ctx, admin, "ssh", RevokeRequest{PublicKey: string(ssh.MarshalAuthorizedKey(parseCert(t, string(pub2)).Key))}); err != nil {
		t.Fatal(err)
	}
	writeKRL()
	refused(key2, cert2)

	// The host CA: a client trusting another CA refuses the host
	// (no TOFU), whatever the user's certificate.
	other := newFixture(t)
	otherCA, _ := other.svc.GetCA(ctx, "ssh")
	strangers := opensshtest.WriteFile(t, filepath.Join(dir, "known_hosts_other"), "@cert-authority sshd.test "+otherCA.PublicKey)
	key3, cert3 := signed("ssh", "id_host", SignRequest{})
	loginOK(key3, cert3, "hello")
	out, err := srv.Login(t, dir, login, key3, cert3, strangers, "true")
	if err == nil || !strings.Contains(out, "Host key verification failed") {
		t.Fatalf("unknown host CA accepted: %v\n%s", err, out)
	}
}

// TestSSHKeygenQuery checks ssh-keygen -Q reads the engine's KRL as
// meant: certificates revoked by serial, by key, by fingerprint and by key
// ID are REVOKED (and so are the plain keys revoked by key or
// fingerprint); others are ok; and a KRL encoded for the same content as
// one ssh-keygen -k writes is byte for byte the same.
func TestSSHKeygenQuery(t *testing.T) {
	tools := opensshtest.Require(t)
	ctx := t.Context()
	f := newFixture(t)
	dir := t.TempDir()
	sign := func(c engine.Caller, name string) (pubFile, certFile string, rec Certificate) {
		t.Helper()
		_, pub := newKey(t)
		s, err := f.svc.Sign(ctx, c, "ssh", SignRequest{Profile: "users", PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		return opensshtest.WriteFile(t, filepath.Join(dir, name+".pub"), pub), opensshtest.WriteFile(t, filepath.Join(dir, name+"-cert.pub"), s.Certificate+"\n"), s.Record
	}
	_, bySerial, _ := sign(alice, "serial")
	keyPub, byKey, _ := sign(alice, "key")
	fpPub, byFP, fpRec := sign(alice, "fp")
	_, byID, _ := sign(bob, "id")
	okPub, okCert, _ := sign(alice, "ok")
	pubOf := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, r := range []RevokeRequest{{Serial: "1"}, {PublicKey: pubOf(keyPub)}, {Fingerprint: fpRec.KeyFingerprint}, {KeyID: "bob"}} {
		if _, err := f.svc.Revoke(ctx, admin, "ssh", r); err != nil {
			t.Fatal(err)
		}
	}
	k, err := f.svc.KRL(ctx, "ssh")
	if err != nil {
		t.Fatal(err)
	}
	krl := opensshtest.WriteFile(t, filepath.Join(dir, "krl"), string(k.KRL))
	for file, want := range map[string]bool{bySerial: true, byKey: true, keyPub: true, byFP: true, fpPub: true, byID: true, okCert: false, okPub: false} {
		if got := opensshtest.KeygenQuery(t, tools, krl, file); got != want {
			t.Errorf("%s: revoked %v, want %v", filepath.Base(file), got, want)
		}
	}

	// ssh-keygen -k from a specification of the same content.
	ca, _ := f.svc.GetCA(ctx, "ssh")
	caFile := opensshtest.WriteFile(t, filepath.Join(dir, "ca.pub"), ca.PublicKey)
	spec := opensshtest.WriteFile(t, filepath.Join(dir, "spec"), fmt.Sprintf("serial: 1\nid: bob\nkey: %shash: %s\n", pubOf(keyPub), fpRec.KeyFingerprint))
	theirs := filepath.Join(dir, "theirs.krl")
	if out, err := exec.Command(tools.Keygen, "-k", "-f", theirs, "-s", caFile, spec).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -k: %v\n%s", err, out)
	}
	want, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{b: want[12:]}
	version, date := r.u64(), r.u64()
	caPub, _ := caPublicKey(ca)
	pk, _ := parsePublicKey("key", pubOf(keyPub))
	fp, _ := parseFingerprint("fp", fpRec.KeyFingerprint)
	ours, err := KRL{Version: version, GeneratedAt: time.Unix(int64(date), 0), CAKey: caPub.Marshal(), Serials: []uint64{1}, //nolint:gosec // a date
		KeyIDs: []string{"bob"}, Keys: [][]byte{pk.Marshal()}, SHA256: [][]byte{fp}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(ours) != string(want) {
		t.Fatalf("KRL differs from ssh-keygen's:\nours   %x\ntheirs %x", ours, want)
	}
}

// TestSSHKeygenList checks ssh-keygen -L shows what was signed: type,
// key ID, serial, validity, principals, critical options, extensions.
func TestSSHKeygenList(t *testing.T) {
	tools := opensshtest.Require(t)
	ctx := t.Context()
	f := newFixture(t)
	_, pub := newKey(t)
	s, err := f.svc.Sign(ctx, alice, "ssh", SignRequest{Profile: "users", PublicKey: pub, TTL: "4h", Extensions: []string{"permit-pty", "permit-port-forwarding"},
		CriticalOptions: map[string]string{"force-command": "/usr/bin/uptime", "source-address": "10.1.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	file := opensshtest.WriteFile(t, filepath.Join(t.TempDir(), "id-cert.pub"), s.Certificate+"\n")
	cmd := exec.Command(tools.Keygen, "-L", "-f", file)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	ca, _ := f.svc.GetCA(ctx, "ssh")
	const ts = "2006-01-02T15:04:05"
	for _, want := range []string{
		"Type: ssh-ed25519-cert-v01@openssh.com user certificate",
		"Signing CA: ED25519 " + ca.Fingerprint,
		`Key ID: "alice"`,
		"Serial: 1",
		fmt.Sprintf("Valid: from %s to %s", s.Record.ValidAfter.Format(ts), s.Record.ValidBefore.Format(ts)),
		"Principals: \n                alice\n",
		"Critical Options: \n                force-command /usr/bin/uptime\n                source-address 10.1.0.0/16\n",
		"Extensions: \n                permit-port-forwarding\n                permit-pty\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ssh-keygen -L lacks %q:\n%s", want, out)
		}
	}
	if s.Record.ValidBefore.Sub(s.Record.ValidAfter) != 4*time.Hour+backdate {
		t.Errorf("validity %v", s.Record.ValidBefore.Sub(s.Record.ValidAfter))
	}
}
