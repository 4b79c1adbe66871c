package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
)

func TestPrint(t *testing.T) {
	rows := []struct{ Name, Type string }{{"mcias", "human"}, {"mcp-agent", "system"}}
	table := func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "NAME\tTYPE")
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%s\n", r.Name, r.Type)
		}
	}
	var out bytes.Buffer
	if err := Print(&out, false, rows, table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "mcp-agent  system") {
		t.Fatalf("table not aligned:\n%s", out.String())
	}
	out.Reset()
	if err := Print(&out, true, rows, table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"Name": "mcp-agent"`) {
		t.Fatalf("json:\n%s", out.String())
	}
}

func TestSession(t *testing.T) {
	type session struct{ Server, Token string }
	path := filepath.Join(t.TempDir(), "tool", "session.json")
	var s session
	if err := LoadSession(path, &s); err != nil || s != (session{}) {
		t.Fatalf("missing file: %+v %v", s, err)
	}
	if err := SaveSession(path, session{"https://x", "tok"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", st, err)
	}
	if err := LoadSession(path, &s); err != nil || s.Token != "tok" {
		t.Fatalf("round trip: %+v %v", s, err)
	}
	if err := os.WriteFile(path, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := LoadSession(path, &s); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt file: %v", err)
	}
	if !strings.HasSuffix(SessionPath("mciasctl"), filepath.Join("mciasctl", "session.json")) {
		t.Fatal(SessionPath("mciasctl"))
	}
}
