package seedpki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"

	"git.metacircular.net/metacircular/mcdsl/tlsutil"
)

func mustInit(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := Init(dir)
	if err != nil {
		t.Fatalf("Init(%s): %v", dir, err)
	}
	return ca
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestInitCreatesRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca := mustInit(t, dir)

	root := ca.Certificate()
	if root.Subject.CommonName != RootCommonName {
		t.Errorf("CN = %q, want %q", root.Subject.CommonName, RootCommonName)
	}
	if !root.IsCA || !root.BasicConstraintsValid || root.MaxPathLen != 1 {
		t.Errorf("IsCA=%v BasicConstraintsValid=%v MaxPathLen=%d, want CA with MaxPathLen 1",
			root.IsCA, root.BasicConstraintsValid, root.MaxPathLen)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; root.KeyUsage != want {
		t.Errorf("KeyUsage = %v, want %v", root.KeyUsage, want)
	}
	if len(root.SubjectKeyId) == 0 {
		t.Error("root has no SubjectKeyId")
	}
	pub, ok := root.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	if years := root.NotAfter.Sub(root.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("root validity %.2f years, want 10", years)
	}
	if bits := root.SerialNumber.BitLen(); bits < 100 || bits > 128 {
		t.Errorf("serial has %d bits, want a random 128-bit serial", bits)
	}
	if ca.CertPath() != filepath.Join(dir, "ca.crt") {
		t.Errorf("CertPath = %s", ca.CertPath())
	}
	checkMode(t, filepath.Join(dir, "ca.key"), 0o600)
	if block, _ := pem.Decode(mustRead(t, filepath.Join(dir, "ca.key"))); block == nil || block.Type != "PRIVATE KEY" {
		t.Error("ca.key is not a PKCS#8 PRIVATE KEY PEM block")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestInitIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	mustInit(t, dir)
	cert1 := mustRead(t, filepath.Join(dir, "ca.crt"))
	key1 := mustRead(t, filepath.Join(dir, "ca.key"))

	ca := mustInit(t, dir)
	if !bytes.Equal(cert1, mustRead(t, filepath.Join(dir, "ca.crt"))) {
		t.Error("second Init rewrote ca.crt")
	}
	if !bytes.Equal(key1, mustRead(t, filepath.Join(dir, "ca.key"))) {
		t.Error("second Init rewrote ca.key")
	}
	block, _ := pem.Decode(cert1)
	if !bytes.Equal(ca.Certificate().Raw, block.Bytes) {
		t.Error("second Init returned a different root")
	}
}

func TestInitCompletesKeyWithoutCert(t *testing.T) {
	dir := t.TempDir()
	mustInit(t, dir)
	key := mustRead(t, filepath.Join(dir, "ca.key"))
	if err := os.Remove(filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	ca := mustInit(t, dir)
	if !bytes.Equal(key, mustRead(t, filepath.Join(dir, "ca.key"))) {
		t.Error("Init replaced the surviving key instead of reusing it")
	}
	if _, err := Load(dir); err != nil {
		t.Errorf("Load after completing the pair: %v", err)
	}
	if ca.Certificate().Subject.CommonName != RootCommonName {
		t.Error("completed root has the wrong subject")
	}
}

func TestInitRefusesCertWithoutKey(t *testing.T) {
	dir := t.TempDir()
	mustInit(t, dir)
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	cert := mustRead(t, filepath.Join(dir, "ca.crt"))
	if _, err := Init(dir); err == nil || !strings.Contains(err.Error(), "without ca.key") {
		t.Fatalf("Init with ca.crt but no key: err = %v, want refusal", err)
	}
	if !bytes.Equal(cert, mustRead(t, filepath.Join(dir, "ca.crt"))) {
		t.Error("Init overwrote the orphaned certificate")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("Load(empty dir) = %v, want ErrNotInitialized", err)
	}

	a, b := t.TempDir(), t.TempDir()
	mustInit(t, a)
	mustInit(t, b)
	if err := os.WriteFile(filepath.Join(a, "ca.key"), mustRead(t, filepath.Join(b, "ca.key")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(a); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Load(mismatched pair) = %v, want mismatch error", err)
	}

	c := t.TempDir()
	mustInit(t, c)
	if err := os.WriteFile(filepath.Join(c, "ca.crt"), []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(c); err == nil {
		t.Error("Load(garbage ca.crt) succeeded")
	}
}

func issue(t *testing.T, ca *CA, name string, req IssueRequest) Issued {
	t.Helper()
	got, err := ca.Issue(name, req)
	if err != nil {
		t.Fatalf("Issue(%q): %v", name, err)
	}
	return got
}

func loadChain(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	certs, err := tlsutil.ParseChain(mustRead(t, path))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return certs
}

func TestIssueFullChainVerifies(t *testing.T) {
	ca := mustInit(t, t.TempDir())
	got := issue(t, ca, "mcias", IssueRequest{
		DNSNames: []string{"mcias.svc.mcp.metacircular.net", "localhost"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1")},
	})

	chain := loadChain(t, got.CertPath)
	if len(chain) != 2 {
		t.Fatalf("chain has %d certificates, want leaf + root", len(chain))
	}
	if !bytes.Equal(chain[0].Raw, got.Leaf.Raw) || !bytes.Equal(chain[1].Raw, ca.Certificate().Raw) {
		t.Fatal("chain is not leaf followed by root")
	}
	leaf := chain[0]
	for _, host := range []string{"mcias.svc.mcp.metacircular.net", "localhost", "127.0.0.1"} {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:   host,
			Roots:     ca.Pool(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			t.Errorf("verify leaf for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: ca.Pool()}); err == nil {
		t.Error("leaf verified for a name it does not carry")
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if days := time.Until(leaf.NotAfter).Hours() / 24; days < 396 || days > 397.1 {
		t.Errorf("leaf valid for %.1f more days, want 397", days)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("leaf key is %T, want ECDSA", leaf.PublicKey)
	}
	checkMode(t, got.KeyPath, 0o600)
	if _, err := tls.LoadX509KeyPair(got.CertPath, got.KeyPath); err != nil {
		t.Errorf("issued pair does not load: %v", err)
	}
}

func TestIssueReusesMatchingCertificate(t *testing.T) {
	ca := mustInit(t, t.TempDir())
	req := IssueRequest{DNSNames: []string{"a.example", "b.example"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}
	first := issue(t, ca, "svc", req)
	cert := mustRead(t, first.CertPath)
	key := mustRead(t, first.KeyPath)

	// Same SANs in another order and case, and a CA loaded afresh.
	ca2, err := Load(filepath.Dir(ca.CertPath()))
	if err != nil {
		t.Fatal(err)
	}
	second := issue(t, ca2, "svc", IssueRequest{
		DNSNames: []string{"B.example", "a.example", "a.example"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1").To16()},
	})
	if !bytes.Equal(cert, mustRead(t, second.CertPath)) || !bytes.Equal(key, mustRead(t, second.KeyPath)) {
		t.Error("second Issue with the same SANs rewrote the files")
	}
	if !bytes.Equal(first.Leaf.Raw, second.Leaf.Raw) {
		t.Error("second Issue returned a different leaf")
	}
}

func TestIssueReissues(t *testing.T) {
	base := IssueRequest{DNSNames: []string{"a.example"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}
	tests := []struct {
		name   string
		tamper func(t *testing.T, ca *CA, got Issued) // applied to the files after the first Issue
		first  IssueRequest
		second IssueRequest
	}{
		{name: "added DNS name", first: base, second: IssueRequest{DNSNames: []string{"a.example", "b.example"}, IPs: base.IPs}},
		{name: "removed IP", first: base, second: IssueRequest{DNSNames: base.DNSNames}},
		{name: "changed IP", first: base, second: IssueRequest{DNSNames: base.DNSNames, IPs: []net.IP{net.ParseIP("::1")}}},
		{
			name:   "expires within 30 days",
			first:  IssueRequest{DNSNames: base.DNSNames, IPs: base.IPs, Validity: 20 * 24 * time.Hour},
			second: base,
		},
		{
			name:   "key does not match",
			first:  base,
			second: base,
			tamper: func(t *testing.T, ca *CA, got Issued) {
				other := issue(t, ca, "other", base)
				if err := os.WriteFile(got.KeyPath, mustRead(t, other.KeyPath), 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:   "signed by another root",
			first:  base,
			second: base,
			tamper: func(t *testing.T, _ *CA, got Issued) {
				foreign := issue(t, mustInit(t, t.TempDir()), "svc", base)
				for _, p := range [][2]string{{foreign.CertPath, got.CertPath}, {foreign.KeyPath, got.KeyPath}} {
					if err := os.WriteFile(p[1], mustRead(t, p[0]), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := mustInit(t, t.TempDir())
			first := issue(t, ca, "svc", tt.first)
			if tt.tamper != nil {
				tt.tamper(t, ca, first)
			}
			second := issue(t, ca, "svc", tt.second)
			if bytes.Equal(first.Leaf.Raw, second.Leaf.Raw) {
				t.Fatal("certificate was reused, want a new one")
			}
			chain := loadChain(t, second.CertPath)
			if len(chain) != 2 || !bytes.Equal(chain[0].Raw, second.Leaf.Raw) {
				t.Fatal("files on disk do not hold the new certificate")
			}
			if _, err := tls.LoadX509KeyPair(second.CertPath, second.KeyPath); err != nil {
				t.Fatalf("re-issued pair does not load: %v", err)
			}
			wantNames := len(tt.second.DNSNames)
			if len(second.Leaf.DNSNames) != wantNames || len(second.Leaf.IPAddresses) != len(tt.second.IPs) {
				t.Errorf("SANs %v %v, want %v %v", second.Leaf.DNSNames, second.Leaf.IPAddresses, tt.second.DNSNames, tt.second.IPs)
			}
		})
	}
}

func TestIssueRejectsInvalidInput(t *testing.T) {
	ok := IssueRequest{DNSNames: []string{"a.example"}}
	tests := []struct {
		name     string
		certName string
		req      IssueRequest
		want     string
	}{
		{"empty name", "", ok, "invalid name"},
		{"slash", "a/b", ok, "invalid name"},
		{"parent dir", "../evil", ok, "invalid name"},
		{"dot first", ".hidden", ok, "invalid name"},
		{"hyphen first", "-x", ok, "invalid name"},
		{"upper case", "MCIAS", ok, "invalid name"},
		{"space", "a b", ok, "invalid name"},
		{"too long", strings.Repeat("a", maxNameLen+1), ok, "invalid name"},
		{"no SANs", "svc", IssueRequest{}, "at least one"},
		{"bad DNS name", "svc", IssueRequest{DNSNames: []string{"under_score.example"}}, "invalid DNS name"},
		{"empty DNS name", "svc", IssueRequest{DNSNames: []string{""}}, "invalid DNS name"},
		{"DNS label hyphen", "svc", IssueRequest{DNSNames: []string{"-a.example"}}, "invalid DNS name"},
		{"bad IP", "svc", IssueRequest{IPs: []net.IP{{1, 2, 3}}}, "invalid IP"},
		{"negative validity", "svc", IssueRequest{DNSNames: []string{"a.example"}, Validity: -time.Hour}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ca := mustInit(t, dir)
			_, err := ca.Issue(tt.certName, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Issue = %v, want error containing %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "issued")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("issued/ exists after rejected request (stat err %v)", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "evil.crt")); !errors.Is(err, os.ErrNotExist) {
				t.Error("a file was written outside issued/")
			}
		})
	}
}

func TestValidateNameAccepts(t *testing.T) {
	for _, name := range []string{"mcias", "mc-proxy", "mcias.grpc", "0", "a.b-c.d9"} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
}

// startServer serves the issued chain over TLS 1.3 on 127.0.0.1.
func startServer(t *testing.T, got Issued) (port string) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(got.CertPath, got.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "seedpki-ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13}
	// The negative cases abort handshakes on purpose; keep their noise out of the test log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, err = net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestRealClientsVerifyIssuedChain(t *testing.T) {
	const host = "mcias.svc.mcp.metacircular.net"
	ca := mustInit(t, t.TempDir())
	got := issue(t, ca, "mcias", IssueRequest{DNSNames: []string{host}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	port := startServer(t, got)
	addr := net.JoinHostPort("127.0.0.1", port)

	t.Run("go", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: host, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatalf("TLS handshake with root pool only: %v", err)
		}
		defer conn.Close()
		state := conn.ConnectionState()
		if state.Version != tls.VersionTLS13 {
			t.Errorf("negotiated version %x, want TLS 1.3", state.Version)
		}
		if n := len(state.PeerCertificates); n != 2 {
			t.Errorf("server sent %d certificates, want the full chain (2)", n)
		}

		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13},
		}}
		defer client.CloseIdleConnections()
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			t.Fatalf("GET by IP SAN: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "seedpki-ok" {
			t.Errorf("body %q", body)
		}

		_, err = tls.Dial("tcp", addr, &tls.Config{ServerName: host, RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS13})
		if err == nil {
			t.Error("handshake succeeded without the root in the pool")
		}
	})

	t.Run("curl", func(t *testing.T) {
		curl := testtool.Require(t, "curl")
		run := func(name, url string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--fail", "--noproxy", "*",
				"--cacert", ca.CertPath(), "--resolve", name+":"+port+":127.0.0.1", url)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		out, err := run(host, "https://"+host+":"+port+"/")
		if err != nil || out != "seedpki-ok" {
			t.Errorf("curl by name: %v: %s", err, out)
		}
		out, err = run(host, "https://127.0.0.1:"+port+"/")
		if err != nil || out != "seedpki-ok" {
			t.Errorf("curl by IP: %v: %s", err, out)
		}
		if out, err := run("wrong.example", "https://wrong.example:"+port+"/"); err == nil {
			t.Errorf("curl accepted a name outside the SANs: %s", out)
		}
	})

	t.Run("openssl", func(t *testing.T) {
		openssl := testtool.Require(t, "openssl")
		run := func(name string) string {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-servername", name,
				"-CAfile", ca.CertPath(), "-verify_return_error", "-verify_hostname", name)
			cmd.Stdin = strings.NewReader("")
			out, _ := cmd.CombinedOutput()
			return string(out)
		}
		if out := run(host); !strings.Contains(out, "Verify return code: 0 (ok)") {
			t.Errorf("openssl s_client did not verify the chain:\n%s", out)
		}
		if out := run("wrong.example"); strings.Contains(out, "Verify return code: 0 (ok)") {
			t.Errorf("openssl verified a name outside the SANs:\n%s", out)
		}
	})
}

func TestSerialsAreUnique(t *testing.T) {
	ca := mustInit(t, t.TempDir())
	a := issue(t, ca, "a", IssueRequest{DNSNames: []string{"a.example"}})
	b := issue(t, ca, "b", IssueRequest{DNSNames: []string{"a.example"}})
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
	if a.Leaf.SerialNumber.Cmp(ca.Certificate().SerialNumber) == 0 {
		t.Error("leaf shares the root's serial number")
	}
}
