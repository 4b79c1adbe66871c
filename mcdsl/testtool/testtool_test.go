package testtool

import "testing"

func TestRequire(t *testing.T) {
	if p := Require(t, "sh"); p == "" {
		t.Fatal("sh not found")
	}
	t.Setenv("METACIRCULAR_REQUIRE_TOOLS", "1")
	if !Required() {
		t.Fatal("Required() false with the variable set")
	}
	t.Setenv("METACIRCULAR_REQUIRE_TOOLS", "")
	if Required() {
		t.Fatal("Required() true without the variable")
	}
}
