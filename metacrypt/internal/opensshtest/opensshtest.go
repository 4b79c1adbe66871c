// Package opensshtest runs the real OpenSSH programs in tests: it finds
// sshd, ssh and ssh-keygen (through mcdsl/testtool, so a missing one
// fails under make test), starts an sshd on a loopback port as the
// current user, logs in with ssh and asks ssh-keygen -Q about a KRL. The
// SSH CA engine's tests and the server's end-to-end tests share it.
package opensshtest

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/testtool"
)

// Tools holds the paths of the real OpenSSH programs.
type Tools struct {
	SSHD, SSH, Keygen string
}

// Require finds sshd, ssh and ssh-keygen (Debian openssh-server and
// openssh-client; sshd is in /usr/sbin, off an ordinary PATH).
func Require(t *testing.T) Tools {
	t.Helper()
	t.Setenv("PATH", os.Getenv("PATH")+string(os.PathListSeparator)+"/usr/sbin")
	return Tools{SSHD: testtool.Require(t, "sshd"), SSH: testtool.Require(t, "ssh"), Keygen: testtool.Require(t, "ssh-keygen")}
}

// WriteKey writes an unencrypted OpenSSH private key (mode 0600, as ssh
// and sshd insist) and returns its path.
func WriteKey(t testing.TB, dir, name string, key ed25519.PrivateKey) string {
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

// WriteFile writes content to path (mode 0600) and returns the path.
func WriteFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Server is an sshd on a loopback port, running in the foreground as
// the current user until the test ends.
type Server struct {
	Port  string
	Logs  *syncbuf.Buffer
	tools Tools
}

// StartSSHD runs sshd with the given configuration lines (port, address
// and the settings an unprivileged run needs are added), its files in dir.
// As root, sshd needs its privilege separation directory, which Debian's
// unit creates at boot; it is created here if missing, as the unit would.
func StartSSHD(t *testing.T, tools Tools, dir string, conf []string) *Server {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil { //nolint:gosec // the mode Debian's unit gives it (sshd checks it)
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
		cfg := WriteFile(t, filepath.Join(dir, "sshd_config"), strings.Join(append([]string{
			"Port " + port, "ListenAddress 127.0.0.1", "PidFile none", "UsePAM no", "StrictModes no",
			"PasswordAuthentication no", "KbdInteractiveAuthentication no", "AuthorizedKeysFile none",
			"PermitRootLogin prohibit-password", "LogLevel VERBOSE",
		}, conf...), "\n")+"\n")
		logs := new(syncbuf.Buffer)
		cmd := exec.Command(tools.SSHD, "-D", "-e", "-f", cfg) //nolint:gosec // the test's sshd and configuration
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
		if waitBanner(port, exited) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("sshd log:\n%s", logs)
				}
			})
			return &Server{Port: port, Logs: logs, tools: tools}
		}
		t.Logf("sshd did not answer on port %s: %s", port, logs)
		stop()
	}
	t.Fatal("sshd did not start")
	return nil
}

// waitBanner waits until the port answers with an SSH banner, or sshd
// exits, or 10 seconds pass.
func waitBanner(port string, exited <-chan struct{}) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err != nil {
			continue
		}
		banner := make([]byte, 4)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(banner)
		_ = c.Close()
		if err == nil && string(banner) == "SSH-" {
			return true
		}
	}
	return false
}

// Login runs ssh against the server with one identity and certificate
// (none when cert is empty), no agent, no configuration file, and host
// keys checked strictly against knownHosts under the alias sshd.test. It
// returns the combined output; a refused login is an error whose output
// says "Permission denied".
func (s *Server) Login(t *testing.T, dir, login, key, cert, knownHosts string, command ...string) (string, error) {
	t.Helper()
	args := []string{"-F", "/dev/null", "-p", s.Port, "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
		"-o", "HostKeyAlias=sshd.test", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"}
	if cert != "" {
		args = append(args, "-o", "CertificateFile="+cert)
	}
	args = append(append(args, login+"@127.0.0.1", "--"), command...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.tools.SSH, args...) //nolint:gosec // the test's ssh and files
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// KeygenQuery is ssh-keygen -Q: whether the KRL revokes the key or
// certificate in file (exit 1, "REVOKED") or not (exit 0, "ok").
func KeygenQuery(t *testing.T, tools Tools, krl, file string) bool {
	t.Helper()
	out, err := exec.Command(tools.Keygen, "-Q", "-f", krl, file).CombinedOutput() //nolint:gosec // the test's ssh-keygen and files
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
