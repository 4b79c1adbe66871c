package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `# hello: a small HTTP service
name = "hello"
node = "rift"

[build.images]
hello = "Dockerfile"

[[components]]
name = "web"
image = "mcr.svc.mcp.metacircular.net:8443/hello:v1.0.0"
volumes = ["/srv/hello:/srv/hello"]
cmd = ["server", "--config", "/srv/hello/hello.toml"]
env = ["LOG_LEVEL=debug"]

[[components.routes]]
port = 443
mode = "l7"

[components.health]
type = "http"
path = "/healthz"

[[components]]
name = "api"
image = "mcr.svc.mcp.metacircular.net:8443/hello-api:1.2.3-rc.1"

[[components.routes]]
name = "grpc"
port = 9443
mode = "l7"
hostname = "api.hello.svc.mcp.metacircular.net"
backend_protocol = "h2c"

[[components.routes]]
name = "rest"
port = 8443
mode = "l4"

[snapshot]
method = "grpc"
exclude = ["cache/*"]
`

func TestParseGood(t *testing.T) {
	s, err := Parse("hello.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "hello" || !s.Active || s.Path != "hello" || len(s.Components) != 2 {
		t.Fatalf("%+v", s)
	}
	web := s.Components[0]
	if web.Restart != RestartUnlessStopped || web.Health.Type != HealthHTTP || web.Health.Path != "/healthz" {
		t.Fatalf("web: %+v", web)
	}
	if web.Routes[0].BackendProtocol != BackendHTTP1 || s.RouteHost(web.Routes[0], "mcp.test") != "hello.svc.mcp.test" {
		t.Fatalf("route: %+v", web.Routes[0])
	}
	api := s.Components[1]
	if api.Health.Type != HealthTCP || api.Routes[1].BackendProtocol != "" || PortEnv(api.Routes[0].Name) != "PORT_GRPC" {
		t.Fatalf("api: %+v", api)
	}
	if s.Snapshot.Method != SnapshotGRPC {
		t.Fatalf("snapshot: %+v", s.Snapshot)
	}
	// The hash ignores formatting and comments, not content.
	again, err := Parse("x.toml", []byte(strings.ReplaceAll(good, "# hello: a small HTTP service\n", "\n\n")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Hash() != again.Hash() {
		t.Fatal("hash depends on formatting")
	}
	changed, err := Parse("x.toml", []byte(strings.Replace(good, "v1.0.0", "v1.0.1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Hash() == changed.Hash() {
		t.Fatal("hash ignores the image")
	}
}

func TestParseErrors(t *testing.T) {
	minimal := "name = \"hello\"\nnode = \"rift\"\n\n[[components]]\nname = \"web\"\nimage = \"r.example/hello:v1.0.0\"\n"
	cases := []struct {
		name, doc, want string
	}{
		{"unknown top key", "colour = \"blue\"\n" + minimal, "hello.toml:1: colour: unknown key"},
		{"unknown nested key", minimal + "volumez = []\n", "hello.toml:7: components[0].volumez: unknown key"},
		{"unknown route key", minimal + "[[components.routes]]\nport = 443\nmode = \"l7\"\nhost = \"x\"\n", "hello.toml:10: components[0].routes[0].host: unknown key"},
		{"missing name", "node = \"rift\"\n[[components]]\nname = \"web\"\nimage = \"r.example/h:v1.0.0\"\n", "hello.toml: name: missing required key"},
		{"missing image", "name = \"h\"\n\n[[components]]\nname = \"web\"\n", "hello.toml:3: components[0].image: missing required key"},
		{"latest", strings.Replace(minimal, "v1.0.0", "latest", 1), "hello.toml:6: components[0].image: image \"r.example/hello:latest\": :latest is refused"},
		{"no tag", strings.Replace(minimal, ":v1.0.0", "", 1), "hello.toml:6: components[0].image: image \"r.example/hello\" has no tag"},
		{"floating tag", strings.Replace(minimal, "v1.0.0", "stable", 1), "not a pinned semantic version"},
		{"duplicate routes", minimal + "[[components.routes]]\nname = \"a\"\nport = 443\nmode = \"l7\"\n[[components.routes]]\nname = \"a\"\nport = 8443\nmode = \"l7\"\n", "hello.toml:12: components[0].routes[1].name: duplicate route name \"a\""},
		{"unnamed routes", minimal + "[[components.routes]]\nport = 443\nmode = \"l7\"\n[[components.routes]]\nport = 8443\nmode = \"l4\"\n", "components[0].routes[0].name: a component with several routes must name each one"},
		{"route missing mode", minimal + "[[components.routes]]\nport = 443\n", "hello.toml:7: components[0].routes[0].mode: missing required key"},
		{"bad mode", minimal + "[[components.routes]]\nport = 443\nmode = \"l5\"\n", "hello.toml:9: components[0].routes[0].mode: must be l4 or l7"},
		{"wrong type", minimal + "[[components.routes]]\nport = \"443\"\nmode = \"l7\"\n", "hello.toml:8"},
		{"bad restart", minimal + "restart = \"sometimes\"\n", "hello.toml:7: components[0].restart"},
		{"PORT in env", minimal + "env = [\"PORT=1\"]\n", "components[0].env[0]: PORT is set by the agent"},
		{"build image unknown", minimal + "[build.images]\nother = \"Dockerfile\"\n", "hello.toml:8: build.images.other: no component image"},
		{"syntax", "name = \n", "syntax error"},
		{"second component bad", minimal + "\n[[components]]\nname = \"web\"\nimage = \"r.example/x:v1\"\n", "hello.toml:9: components[1].name: duplicate component name"},
		{"health without route", minimal + "[components.health]\ntype = \"http\"\n", "components[0].health.type: a http check needs a route"},
		{"node and tier", strings.Replace(minimal, "node = \"rift\"", "node = \"rift\"\ntier = \"core\"", 1), "hello.toml:3: tier: give node"},
		{"duplicate host", minimal + "[[components.routes]]\nname = \"a\"\nport = 443\nmode = \"l7\"\n[[components.routes]]\nname = \"b\"\nport = 443\nmode = \"l4\"\n", "components[0].routes[1].hostname: host name \"<service>.svc.D\" on port 443 is already routed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("hello.toml", []byte(c.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.doc)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, not Errors: %v", err, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error\n%v\ndoes not contain\n%s", err, c.want)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.toml", good)
	write("b.toml", strings.Replace(good, "v1.0.0", "v2.0.0", 1))
	write("c.toml", "name = \"c\"\nbogus = 1\n[[components]]\nname = \"x\"\nimage = \"r.example/c:v1.0.0\"\n")
	write("notes.txt", "ignored")
	_, err := LoadDir(dir)
	if err == nil {
		t.Fatal("accepted a duplicate service and an unknown key")
	}
	msg := err.Error()
	for _, want := range []string{"b.toml: name: service \"hello\" is also defined in", "c.toml:2: bogus: unknown key"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("%s\nmissing %q", msg, want)
		}
	}
}

func TestParseImage(t *testing.T) {
	for ref, want := range map[string]Image{
		"mcr.svc.mcp.metacircular.net:8443/mcns:v1.2.0": {Registry: "mcr.svc.mcp.metacircular.net:8443", Repository: "mcns", Tag: "v1.2.0"},
		"localhost/hello:1.0.0":                         {Registry: "localhost", Repository: "hello", Tag: "1.0.0"},
		"127.0.0.1:5000/team/hello:v0.1.0-rc.1+b7":      {Registry: "127.0.0.1:5000", Repository: "team/hello", Tag: "v0.1.0-rc.1+b7"},
		"hello:v1.0.0": {Repository: "hello", Tag: "v1.0.0"},
	} {
		got, err := ParseImage(ref)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", ref, got, err)
		}
	}
	if got, _ := ParseImage("r.example/team/hello:v1.0.0"); got.Name() != "hello" {
		t.Error(got.Name())
	}
	for _, bad := range []string{"", "hello", "hello:latest", "r.example/Hello:v1.0.0", "r.example/hello:v1", "r.example/hello:v1.0.0@sha256:abc"} {
		if _, err := ParseImage(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("name = \"x\"\n[[components]]\nname = \"a\"\nimage = \"r/x:v1.0.0\"\n[[components.routes]]\nport = 1\nmode = \"l4\"\n"))
	f.Add([]byte("[[a.b]]\n[a.b.c]\nx = 1\n[[a.b.c.d]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.toml", data)
		if err == nil {
			if s.Name == "" || len(s.Components) == 0 {
				t.Fatalf("accepted an incomplete definition: %+v", s)
			}
			_ = s.Hash()
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error %T %v", err, err)
		}
	})
}

func TestCheckRoundTrip(t *testing.T) {
	s, err := Parse("hello.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Check(s)
	if err != nil {
		t.Fatal(err)
	}
	if again.Hash() != s.Hash() {
		t.Fatalf("round trip changed the definition:\n%+v\n%+v", s, again)
	}
	bad := *s
	bad.Components = append([]Component(nil), s.Components...)
	bad.Components[0].Image = "r.example/hello:latest"
	if _, err := Check(&bad); err == nil || !strings.Contains(err.Error(), "request: components[0].image: image \"r.example/hello:latest\": :latest is refused") {
		t.Fatalf("%v", err)
	}
}

// The definitions shipped in the repository are valid: the platform's own
// (services/) and the examples.
func TestShippedDefinitions(t *testing.T) {
	for _, dir := range []string{"../../../services", "../../deploy/examples/services"} {
		defs, err := LoadDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(defs) == 0 {
			t.Fatalf("%s: no definitions", dir)
		}
	}
}
