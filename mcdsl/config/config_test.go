package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Server   Server   `toml:"server"`
	Database Database `toml:"database"`
	MCIAS    MCIAS    `toml:"mcias"`
	Limits   struct {
		MaxItems int      `toml:"max_items"`
		Verbose  bool     `toml:"verbose"`
		Names    []string `toml:"names"`
		Window   Duration `toml:"window"`
	} `toml:"limits"`
}

const base = `
[server]
listen_addr = "127.0.0.1:8443"
grpc_addr = "127.0.0.1:9443"
tls_cert = "/srv/svc/certs/cert.pem"
tls_key = "/srv/svc/certs/key.pem"
shutdown_timeout = "15s"

[database]
path = "/srv/svc/svc.db"

[mcias]
server_url = "https://mcias.svc.mcp.metacircular.net:8443"
service_name = "svc"
tags = ["env:test"]

[limits]
max_items = 10
window = "1m30s"
`

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "svc.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadTOML(t *testing.T) {
	var c testConfig
	if err := Load(write(t, base), "svc", &c); err != nil {
		t.Fatal(err)
	}
	if c.Server.ListenAddr != "127.0.0.1:8443" || c.Server.ShutdownTimeout.Duration != 15*time.Second ||
		c.Limits.Window.Duration != 90*time.Second || c.Limits.MaxItems != 10 || c.MCIAS.Tags[0] != "env:test" {
		t.Fatalf("unexpected config: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	// TOML < SERVICE_SECTION_KEY env < $PORT / $PORT_GRPC.
	t.Setenv("MY_SVC_SERVER_LISTEN_ADDR", "127.0.0.1:1111")
	t.Setenv("MY_SVC_SERVER_GRPC_ADDR", "127.0.0.1:2222")
	t.Setenv("MY_SVC_LIMITS_MAX_ITEMS", "42")
	t.Setenv("MY_SVC_LIMITS_VERBOSE", "true")
	t.Setenv("MY_SVC_LIMITS_NAMES", "a, b,c")
	t.Setenv("MY_SVC_LIMITS_WINDOW", "2m")
	t.Setenv("MY_SVC_DATABASE_PATH", "/tmp/other.db")
	var c testConfig
	if err := Load(write(t, base), "my-svc", &c); err != nil {
		t.Fatal(err)
	}
	if c.Server.ListenAddr != "127.0.0.1:1111" || c.Server.GRPCAddr != "127.0.0.1:2222" {
		t.Fatalf("env did not override TOML: %+v", c.Server)
	}
	if c.Limits.MaxItems != 42 || !c.Limits.Verbose || strings.Join(c.Limits.Names, "|") != "a|b|c" ||
		c.Limits.Window.Duration != 2*time.Minute || c.Database.Path != "/tmp/other.db" {
		t.Fatalf("env overrides: %+v %+v", c.Limits, c.Database)
	}

	t.Setenv("PORT", "18080")
	t.Setenv("PORT_GRPC", "19090")
	var c2 testConfig
	if err := Load(write(t, base), "my-svc", &c2); err != nil {
		t.Fatal(err)
	}
	if c2.Server.ListenAddr != ":18080" || c2.Server.GRPCAddr != ":19090" {
		t.Fatalf("$PORT did not win: %+v", c2.Server)
	}
}

func TestBadEnvValues(t *testing.T) {
	for env, val := range map[string]string{
		"PORT":                        "http",
		"PORT_GRPC":                   "70000",
		"SVC_LIMITS_MAX_ITEMS":        "many",
		"SVC_LIMITS_VERBOSE":          "maybe",
		"SVC_SERVER_SHUTDOWN_TIMEOUT": "soon",
	} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			var c testConfig
			err := Load(write(t, base), "svc", &c)
			if err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("want error naming %s, got %v", env, err)
			}
		})
	}
}

func TestUnknownKeyNamesKeyAndFile(t *testing.T) {
	path := write(t, base+"\n[server.extra]\n\n[database2]\npath = 'x'\n")
	var c testConfig
	err := Load(path, "svc", &c)
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	for _, want := range []string{path, "database2", "unknown key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	path = write(t, strings.Replace(base, "max_items = 10", "max_itmes = 10", 1))
	err = Load(path, "svc", &c)
	if err == nil || !strings.Contains(err.Error(), `"limits.max_itmes"`) || !strings.Contains(err.Error(), path) {
		t.Fatalf("typo not reported by key and file: %v", err)
	}
}

func TestRequiredFields(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"database path", strings.Replace(base, `path = "/srv/svc/svc.db"`, "", 1), "database.path"},
		{"mcias url", strings.Replace(base, `server_url = "https://mcias.svc.mcp.metacircular.net:8443"`, "", 1), "mcias.server_url"},
		{"tls cert", strings.Replace(base, `tls_cert = "/srv/svc/certs/cert.pem"`, "", 1), "server.tls_cert"},
		{"listen addr", strings.Replace(strings.Replace(base, `listen_addr = "127.0.0.1:8443"`, "", 1), `grpc_addr = "127.0.0.1:9443"`, "", 1), "server.listen_addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, tc.body)
			var c testConfig
			err := Load(path, "svc", &c)
			if err == nil || !strings.Contains(err.Error(), "missing required field "+tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("want missing %s naming %s, got %v", tc.want, path, err)
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	for _, body := range []string{
		strings.Replace(base, `window = "1m30s"`, `window = "90 seconds"`, 1),
		strings.Replace(base, `max_items = 10`, `max_items = "ten"`, 1),
		"[server\n",
	} {
		var c testConfig
		if err := Load(write(t, body), "svc", &c); err == nil {
			t.Errorf("accepted bad config %q", body)
		}
	}
	var c testConfig
	if err := Load(filepath.Join(t.TempDir(), "missing.toml"), "svc", &c); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestPlainHTTPNeedsNoTLS(t *testing.T) {
	body := `
[server]
listen_addr = "127.0.0.1:8080"
plain_http = true
[database]
path = "x.db"
[mcias]
server_url = "https://mcias"
`
	var c testConfig
	if err := Load(write(t, body), "svc", &c); err != nil {
		t.Fatal(err)
	}
}

func TestProxyProtocolFrom(t *testing.T) {
	good := `
[server]
listen_addr = "127.0.0.1:8080"
plain_http = true
proxy_protocol_from = ["127.0.0.1", "10.0.0.0/8", "::1"]
proxy_header_timeout = "2s"
[database]
path = "x.db"
[mcias]
server_url = "https://mcias"
`
	var c testConfig
	if err := Load(write(t, good), "svc", &c); err != nil || len(c.Server.ProxyProtocolFrom) != 3 || c.Server.ProxyHeaderTimeout.Seconds() != 2 {
		t.Fatalf("%+v %v", c.Server, err)
	}
	bad := strings.Replace(good, `"::1"`, `"mc-proxy.local"`, 1)
	if err := Load(write(t, bad), "svc", &c); err == nil || !strings.Contains(err.Error(), "server.proxy_protocol_from[2]") {
		t.Fatalf("host name accepted or error unclear: %v", err)
	}
}
