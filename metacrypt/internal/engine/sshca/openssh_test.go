package sshca

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// openssh holds the paths of the real OpenSSH programs.
type openssh struct {
	sshd, ssh, keygen string
}

// requireOpenSSH finds sshd, ssh and ssh-keygen (Debian openssh-server
// and openssh-client; sshd is in /usr/sbin, off an ordinary PATH).
func requireOpenSSH(t *testing.T) openssh {
	t.Helper()
	t.Setenv("PATH", os.Getenv("PATH")+string(os.PathListSeparator)+"/usr/sbin")
	return openssh{sshd: testtool.Require(t, "sshd"), ssh: testtool.Require(t, "ssh"), keygen: testtool.Require(t, "ssh-keygen")}
}

// writeKey writes an unencrypted OpenSSH private key (mode 0600, as ssh
// and sshd insist) and returns its path.
func writeKey(t *testing.T, dir, name string, key ed25519.PrivateKey) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sshServer is an sshd on a loopback port, running in the foreground as
// the current user until the test ends.
type sshServer struct {
	port string
	logs *syncbuf.Buffer
}

// startSSHD runs sshd with the given configuration lines (port, address
// and the settings an unprivileged run needs are added). As root, sshd
// needs its privilege separation directory, which Debian's unit creates
// at boot; it is created here if missing, as the unit would.
func startSSHD(t *testing.T, tools openssh, dir string, conf []string) *sshServer {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The port is found free, released and handed to sshd, so another
	// socket may take it in between: then a fresh port is tried.
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		_ = l.Close()
		cfg := writeFile(t, filepath.Join(dir, "sshd_config"), strings.Join(append([]string{
			"Port " + port, "ListenAddress 127.0.0.1", "PidFile none", "UsePAM no", "StrictModes no",
			"PasswordAuthentication no", "KbdInteractiveAuthentication no", "AuthorizedKeysFile none",
			"PermitRootLogin prohibit-password", "LogLevel VERBOSE",
		}, conf...), "\n")+"\n")
		logs := new(syncbuf.Buffer)
		cmd := exec.Command(tools.sshd, "-D", "-e", "-f", cfg)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start sshd: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			select {
			case <-exited:
				t.Logf("sshd exited: %s", logs)
			default:
				c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
				if err != nil {
					continue
				}
				banner := make([]byte, 4)
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, err = c.Read(banner)
				_ = c.Close()
				if err == nil && string(banner) == "SSH-" {
					t.Cleanup(func() {
						stop()
						if t.Failed() {
							t.Logf("sshd log:\n%s", logs)
						}
					})
					return &sshServer{port: port, logs: logs}
				}
				continue
			}
			break
		}
		stop()
	}
	t.Fatal("sshd did not start")
	return nil
}

// client runs ssh against the server with one identity and certificate,
// no agent, no configuration file, and host keys checked strictly
// against known_hosts under the alias sshd.test.
func (s *sshServer) client(t *testing.T, tools openssh, dir, login, key, cert, knownHosts string, command ...string) (string, error) {
	t.Helper()
	args := []string{"-F", "/dev/null", "-p", s.port, "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
		"-o", "HostKeyAlias=sshd.test", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"}
	if cert != "" {
		args = append(args, "-o", "CertificateFile="+cert)
	}
	args = append(append(args, login+"@127.0.0.1", "--"), command...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.ssh, args...)
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// keygenQuery is ssh-keygen -Q: whether the KRL revokes the key or
// certificate in file (exit 1, "REVOKED") or not (exit 0, "ok").
func keygenQuery(t *testing.T, tools openssh, krl, file string) bool {
	t.Helper()
	out, err := exec.Command(tools.keygen, "-Q", "-f", krl, file).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil && strings.Contains(string(out), ": ok"):
		return false
	case errors.As(err, &exit) && exit.ExitCode() == 1 && strings.Contains(string(out), ": REVOKED"):
		return true
	}
	t.Fatalf("ssh-keygen -Q %s: %v\n%s", file, err, out)
	return false
}

// TestOpenSSHLogin is the SSH CA against real OpenSSH: an sshd trusting
// three mounts' CA keys (Ed25519, ECDSA P-384, RSA 3072) with the Ed25519
// mount's KRL as RevokedKeys, presenting a host certificate from a fourth
// mount. ssh logs in with each CA's user certificate, checking the host
// certificate through an @cert-authority line with
// StrictHostKeyChecking=yes; the critical options are enforced; after
// revocation by serial, then by key, the same logins are refused; a host
// CA the client does not know is refused.
func TestOpenSSHLogin(t *testing.T) {
	tools := requireOpenSSH(t)
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
	userCAs := writeFile(t, filepath.Join(dir, "user_ca.pub"), trusted.String())
	krlFile := filepath.Join(dir, "revoked.krl")
	writeKRL := func() {
		t.Helper()
		k, err := f.svc.KRL(ctx, "ssh")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, krlFile, string(k.KRL))
	}
	writeKRL()
	principals := writeFile(t, filepath.Join(dir, "principals"), "alice\n")

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
	hostKey := writeKey(t, dir, "host_key", hostPriv)
	hostCert, err := f.svc.Sign(ctx, admin, "ssh-hosts", SignRequest{Profile: "hosts", PublicKey: hostPub, Principals: []string{"sshd.test"}})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, hostKey+"-cert.pub", hostCert.Certificate+"\n")
	knownHosts := writeFile(t, filepath.Join(dir, "known_hosts"), "@cert-authority sshd.test "+hostCA.PublicKey)

	srv := startSSHD(t, tools, dir, []string{
		"HostKey " + hostKey, "HostCertificate " + hostKey + "-cert.pub",
		"TrustedUserCAKeys " + userCAs, "RevokedKeys " + krlFile, "AuthorizedPrincipalsFile " + principals,
	})

	// signed makes a key and alice's certificate for it from a mount.
	signed := func(mount, name string, r SignRequest) (key, cert string) {
		t.Helper()
		priv, pub := newKey(t)
		key = writeKey(t, dir, name, priv)
		r.Profile, r.PublicKey = "users", pub
		s, err := f.svc.Sign(ctx, alice, mount, r)
		if err != nil {
			t.Fatal(err)
		}
		return key, writeFile(t, key+"-cert.pub", s.Certificate+"\n")
	}
	loginOK := func(key, cert, want string) {
		t.Helper()
		out, err := srv.client(t, tools, dir, login, key, cert, knownHosts, "echo", "hello")
		if err != nil || strings.TrimSpace(out) != want {
			t.Fatalf("login with %s: %v\n%s", filepath.Base(cert), err, out)
		}
	}
	refused := func(key, cert string) {
		t.Helper()
		out, err := srv.client(t, tools, dir, login, key, cert, knownHosts, "echo", "hello")
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
	if !strings.Contains(srv.logs.String(), `ID alice (serial 1)`) {
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
	refused(writeKey(t, dir, "id_plain", plain), "")

	// Revocation by serial.
	if _, err := f.svc.Revoke(ctx, alice, "ssh", RevokeRequest{Serial: "1"}); err != nil {
		t.Fatal(err)
	}
	writeKRL()
	refused(key1, cert1)
	if !keygenQuery(t, tools, krlFile, cert1) {
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
	strangers := writeFile(t, filepath.Join(dir, "known_hosts_other"), "@cert-authority sshd.test "+otherCA.PublicKey)
	key3, cert3 := signed("ssh", "id_host", SignRequest{})
	loginOK(key3, cert3, "hello")
	out, err := srv.client(t, tools, dir, login, key3, cert3, strangers, "true")
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
	tools := requireOpenSSH(t)
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
		return writeFile(t, filepath.Join(dir, name+".pub"), pub), writeFile(t, filepath.Join(dir, name+"-cert.pub"), s.Certificate+"\n"), s.Record
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
	krl := writeFile(t, filepath.Join(dir, "krl"), string(k.KRL))
	for file, want := range map[string]bool{bySerial: true, byKey: true, keyPub: true, byFP: true, fpPub: true, byID: true, okCert: false, okPub: false} {
		if got := keygenQuery(t, tools, krl, file); got != want {
			t.Errorf("%s: revoked %v, want %v", filepath.Base(file), got, want)
		}
	}

	// ssh-keygen -k from a specification of the same content.
	ca, _ := f.svc.GetCA(ctx, "ssh")
	caFile := writeFile(t, filepath.Join(dir, "ca.pub"), ca.PublicKey)
	spec := writeFile(t, filepath.Join(dir, "spec"), fmt.Sprintf("serial: 1\nid: bob\nkey: %shash: %s\n", pubOf(keyPub), fpRec.KeyFingerprint))
	theirs := filepath.Join(dir, "theirs.krl")
	if out, err := exec.Command(tools.keygen, "-k", "-f", theirs, "-s", caFile, spec).CombinedOutput(); err != nil {
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
	tools := requireOpenSSH(t)
	ctx := t.Context()
	f := newFixture(t)
	_, pub := newKey(t)
	s, err := f.svc.Sign(ctx, alice, "ssh", SignRequest{Profile: "users", PublicKey: pub, TTL: "4h", Extensions: []string{"permit-pty", "permit-port-forwarding"},
		CriticalOptions: map[string]string{"force-command": "/usr/bin/uptime", "source-address": "10.1.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, filepath.Join(t.TempDir(), "id-cert.pub"), s.Certificate+"\n")
	cmd := exec.Command(tools.keygen, "-L", "-f", file)
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
