package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

func TestToolSessionAndLogin(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("METACIRCULAR_MCNS", "mcns.test:9443")
	t.Setenv(EnvMCIAS, "mcias.test:9443")
	t.Setenv(EnvCA, "/ca.crt")
	var got LoginRequest
	var gotAddr string
	tool := &Tool{Name: "mcnsctl", Service: "mcns", Login: func(_ context.Context, mcias, ca string, req LoginRequest) (string, time.Time, error) {
		got, gotAddr = req, mcias+" "+ca
		if req.Password != "s3cret" {
			return "", time.Time{}, apierr.Opaque(apierr.Unauthenticated, "invalid credentials")
		}
		return "tok-1", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), nil
	}}
	root := &cobra.Command{Use: "mcnsctl", SilenceUsage: true, SilenceErrors: true}
	tool.Flags(root)
	root.AddCommand(tool.LoginCommand())
	session := filepath.Join(dir, "session.json")

	run := func(stdin string, args ...string) (string, error) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.WriteString(stdin)
		_ = w.Close()
		old := os.Stdin
		os.Stdin = r
		defer func() { os.Stdin = old; _ = r.Close() }()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append([]string{"--session", session}, args...))
		err = root.ExecuteContext(context.Background())
		return out.String(), err
	}
	if _, _, err := tool.Server(true); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("before login: %v", err)
	}
	if _, err := run("wrong\n", "login", "-u", "alice", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "invalid credentials") {
		t.Fatalf("bad password: %v", err)
	}
	out, err := run("s3cret\n", "login", "-u", "alice", "--password-stdin", "--tag", "ci")
	if err != nil || !strings.Contains(out, "logged in as alice") {
		t.Fatalf("login: %v %s", err, out)
	}
	if gotAddr != "mcias.test:9443 /ca.crt" || got.ServiceName != "mcnsctl" || len(got.Tags) != 1 {
		t.Errorf("login request %+v to %s", got, gotAddr)
	}
	fi, err := os.Stat(session)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v %v", fi, err)
	}
	s, addr, err := tool.Server(true)
	if err != nil || addr != "mcns.test:9443" || s.Token != "tok-1" || s.Username != "alice" {
		t.Fatalf("session after login: %+v %s %v", s, addr, err)
	}
	if err := tool.ForgetToken(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tool.Server(true); err == nil {
		t.Error("token survived ForgetToken")
	}
}

func TestEnvNames(t *testing.T) {
	if ServerEnv("mc-proxy") != "METACIRCULAR_MC_PROXY" || TokenEnv("mcnsctl") != "MCNSCTL_TOKEN" {
		t.Error(ServerEnv("mc-proxy"), TokenEnv("mcnsctl"))
	}
}
