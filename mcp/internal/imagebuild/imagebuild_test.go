package imagebuild

import (
	"encoding/base64"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcp/internal/spec"
)

func TestTokenUser(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"1","username":"alice"}`))
	if u, err := TokenUser("e30." + payload + ".sig"); err != nil || u != "alice" {
		t.Fatalf("%q %v", u, err)
	}
	for _, bad := range []string{"", "abc", "a.b.c", "e30.e30.x"} {
		if _, err := TokenUser(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestPlan(t *testing.T) {
	sp := &spec.Service{Name: "api", Path: "apisrc", BuildImages: map[string]string{"api": "Dockerfile", "api-web": "web/Dockerfile"},
		Components: []spec.Component{{Name: "api", Image: "r.test:5000/api:v1.0.0"}, {Name: "web", Image: "r.test:5000/api-web:v1.0.0"}}}
	b := &Builder{Workspace: "/ws"}
	imgs, err := b.Plan(sp)
	if err != nil || len(imgs) != 2 {
		t.Fatalf("%+v %v", imgs, err)
	}
	if imgs[0].Ref != "r.test:5000/api-web:v1.0.0" || imgs[0].Dockerfile != "/ws/apisrc/web/Dockerfile" || imgs[0].Context != "/ws/apisrc" || imgs[0].Registry != "r.test:5000" {
		t.Fatalf("%+v", imgs[0])
	}
	if _, err := (&Builder{}).Plan(sp); err == nil || !strings.Contains(err.Error(), "workspace") {
		t.Fatal(err)
	}
}
