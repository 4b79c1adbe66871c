// Package testtool finds the real client programs integration tests drive
// (curl, openssl, dig, chromium, ...). A missing program skips the test on
// a developer's machine, but fails it when METACIRCULAR_REQUIRE_TOOLS=1 —
// which `make test` and CI set — so a missing install step cannot hide
// behind a green run.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing tools must fail tests.
func Required() bool { return os.Getenv("METACIRCULAR_REQUIRE_TOOLS") == "1" }

// Require returns the path of program name, or skips (or, when Required,
// fails) the test.
func Require(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if Required() {
			t.Fatalf("%s is required (scripts/deps.sh test installs it): %v", name, err)
		}
		t.Skipf("%s not installed (scripts/deps.sh test installs it)", name)
	}
	return path
}
