package spec

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

var (
	nameRe  = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// ValidName checks a service, component, route or node name: a DNS label
// starting with a letter (lower case letters, digits, '-').
func ValidName(s string) error {
	if !nameRe.MatchString(s) {
		return fmt.Errorf("%q is not a valid name (lower case letters, digits and '-', starting with a letter, at most 63)", s)
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) > 253 || !strings.Contains(h, ".") {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !labelRe.MatchString(l) {
			return false
		}
	}
	return true
}

// validVolume checks host:container[:options] with absolute paths.
func validVolume(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("must be host-path:container-path[:options], got %q", v)
	}
	for _, p := range parts[:2] {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("%q: both paths must be clean absolute paths", v)
		}
	}
	return nil
}
