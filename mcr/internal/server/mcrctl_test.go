package server_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// mcrctl runs the mcrctl binary as caller against h's gRPC API.
func (h *harness) mcrctl(t *testing.T, caller string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), env.mcrctlBin, append([]string{"--session", t.TempDir() + "/session.json"}, args...)...)
	cmd.Env = append(os.Environ(), "METACIRCULAR_MCR="+h.grpc, "METACIRCULAR_CA="+env.ca.CertPath(), "MCRCTL_TOKEN="+env.tokens[caller])
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMcrctl drives the CLI over gRPC: repositories and tags (filtered by
// what the caller may pull), manifest inspection of an index with its
// platforms, policies, gc with --dry-run, and the audit log.
func TestMcrctl(t *testing.T) {
	h := start(t, options{})
	c := h.client(alice)
	img := newImage("cli")
	c.pushImage(t, "team/app", "v1", img)
	c.pushImage(t, "alice/own", "v1", newImage("own"))
	ok := func(caller string, args ...string) string {
		t.Helper()
		out, err := h.mcrctl(t, caller, args...)
		if err != nil {
			t.Fatalf("mcrctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	var repos []struct{ Name string }
	if err := json.Unmarshal([]byte(ok(bob, "repos", "list", "--json")), &repos); err != nil || len(repos) != 1 || repos[0].Name != "team/app" {
		t.Fatalf("bob's repositories: %v %+v", err, repos)
	}
	if out := ok(alice, "repos", "list"); !strings.Contains(out, "alice/own") || !strings.Contains(out, "pull,push,delete") {
		t.Fatalf("alice's table:\n%s", out)
	}
	if out, err := h.mcrctl(t, bob, "tags", "alice/own"); err == nil || !strings.Contains(out, "no such repository") {
		t.Fatalf("bob sees alice/own: %v\n%s", err, out)
	}
	if out := ok(bob, "tags", "team/app"); !strings.Contains(out, img.digest.String()) {
		t.Fatalf("tags:\n%s", out)
	}
	out := ok(bob, "manifest", "inspect", "team/app", "v1")
	for _, want := range []string{"LAYERS", "CONFIG", img.digest.String(), "total size"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect lacks %q:\n%s", want, out)
		}
	}
	if raw := ok(bob, "manifest", "inspect", "team/app", "v1", "--raw"); strings.TrimSpace(raw) != string(img.manifest) {
		t.Fatalf("raw manifest:\n%s", raw)
	}
	// Policies: admins only; an added rule takes effect at once.
	if out, err := h.mcrctl(t, alice, "policies", "list"); err == nil || !strings.Contains(out, "admin role required") {
		t.Fatalf("alice listed policies: %v\n%s", err, out)
	}
	out = ok(admin, "policies", "add", "--repository", "shared/*", "--role", "user", "--actions", "pull,push", "--description", "shared space", "--json")
	var p struct{ ID int64 }
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.ID == 0 {
		t.Fatalf("policy add: %v\n%s", err, out)
	}
	c.pushImage(t, "shared/x", "v1", newImage("shared"))
	if out, err := h.mcrctl(t, admin, "policies", "add", "--repository", "Bad Name", "--role", "user"); err == nil || !strings.Contains(out, "want a repository name or glob") {
		t.Fatalf("bad rule accepted: %v\n%s", err, out)
	}
	if out := ok(admin, "policies", "list"); !strings.Contains(out, "shared space") || !strings.Contains(out, "mcp-agent") {
		t.Fatalf("policies:\n%s", out)
	}
	ok(admin, "policies", "delete", "1")
	// GC: a dry run over gRPC (the grace window keeps the fresh blobs).
	if out := ok(admin, "gc", "--dry-run"); !strings.Contains(out, "would delete 0 blobs") {
		t.Fatalf("gc --dry-run:\n%s", out)
	}
	var rep struct {
		DryRun bool `json:"dry_run"`
	}
	if err := json.Unmarshal([]byte(ok(admin, "gc", "--json")), &rep); err != nil || rep.DryRun {
		t.Fatalf("gc --json: %v", err)
	}
	// Audit: the pushes, the pull, the policy changes, the collection.
	out = ok(admin, "audit", "--limit", "200")
	for _, want := range []string{"push", "policy.create", "policy.delete", "gc", "alice"} {
		if !strings.Contains(out, want) {
			t.Fatalf("audit lacks %q:\n%s", want, out)
		}
	}
	var evs []struct{ Action, Repository string }
	if err := json.Unmarshal([]byte(ok(admin, "audit", "--repository", "shared/x", "--json")), &evs); err != nil || len(evs) == 0 {
		t.Fatalf("audit --repository: %v %+v", err, evs)
	}
	for _, e := range evs {
		if e.Repository != "shared/x" {
			t.Fatalf("filter leaked %+v", e)
		}
	}
	// Every command has an Examples section.
	for _, cmd := range [][]string{{"repos", "list"}, {"repos", "show"}, {"tags"}, {"manifest", "inspect"}, {"policies", "add"},
		{"policies", "list"}, {"policies", "update"}, {"policies", "delete"}, {"gc"}, {"audit"}, {"login"}} {
		if help := ok(admin, append(cmd, "--help")...); !strings.Contains(help, "Examples:") {
			t.Errorf("mcrctl %s has no examples", strings.Join(cmd, " "))
		}
	}
}
