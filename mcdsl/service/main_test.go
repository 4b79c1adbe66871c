package service_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/service"
)

type demoConfig struct {
	DB  string
	Log logging.Config
}

func demoDef(dbPath string) service.Def[*demoConfig] {
	return service.Def[*demoConfig]{
		Name: "demo", Short: "a demo service", Version: "v0.0.1",
		Load: func(path string) (*demoConfig, error) {
			if _, err := os.Stat(path); err != nil {
				return nil, err
			}
			return &demoConfig{DB: dbPath}, nil
		},
		Logging:  func(c *demoConfig) logging.Config { return c.Log },
		Build:    func(context.Context, *demoConfig, *service.Runtime) error { return nil },
		Database: func(c *demoConfig) string { return c.DB },
		OpenDB: func(ctx context.Context, c *demoConfig) (*db.DB, error) {
			return db.Open(ctx, c.DB, db.Options{Migrations: []db.Migration{{Version: 1, Name: "t", Up: func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `CREATE TABLE t (x INTEGER)`)
				return err
			}}}})
		},
	}
}

func runCmd(t *testing.T, def service.Def[*demoConfig], args ...string) (string, error) {
	t.Helper()
	cmd := service.Command(def)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestStandardVerbs(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "demo.toml")
	if err := os.WriteFile(cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	def := demoDef(filepath.Join(dir, "demo.db"))
	if out, err := runCmd(t, def, "--config", cfg, "status"); err == nil || !strings.Contains(err.Error(), "run demo init") {
		t.Fatalf("status before init: %v %s", err, out)
	}
	out, err := runCmd(t, def, "--config", cfg, "init")
	if err != nil || !strings.Contains(out, "ready (1 migrations applied)") {
		t.Fatalf("init: %v %s", err, out)
	}
	out, err = runCmd(t, def, "--config", cfg, "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Database   string `json:"database"`
		Migrations int    `json:"migrations"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Migrations != 1 || st.Database != filepath.Join(dir, "demo.db") {
		t.Fatalf("status: %v %s", err, out)
	}
	out, err = runCmd(t, def, "--config", cfg, "snapshot")
	if err != nil || !strings.Contains(out, filepath.Join(dir, "backups", "demo-")) {
		t.Fatalf("snapshot: %v %s", err, out)
	}
	// Every verb documents itself with examples.
	for _, c := range service.Command(def).Commands() {
		if c.Name() != "help" && c.Name() != "completion" && c.Example == "" {
			t.Errorf("verb %s has no Example", c.Name())
		}
	}
	stateless := def
	stateless.Database, stateless.OpenDB = nil, nil
	if out, err := runCmd(t, stateless, "--config", cfg, "init"); err != nil || !strings.Contains(out, "keeps no state") {
		t.Errorf("stateless init: %v %s", err, out)
	}
	if _, err := runCmd(t, def, "--config", filepath.Join(dir, "missing.toml"), "server"); err == nil {
		t.Error("server started without its configuration")
	}
}
