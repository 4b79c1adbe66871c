// Package names parses the DNS names a certificate may carry and the name
// patterns issuance limits are written in, and matches one against the
// other label by label. It is hand-written rather than a glob or a suffix
// test because both of those get the edge cases wrong: "*.svc.example.net"
// must allow "x.svc.example.net" but not "svc.example.net",
// "a.b.svc.example.net" or "x.svc.example.net.evil.net", and
// "evilexample.net" is not under "example.net". The matcher is fuzzed
// (FuzzMatch).
package names

import (
	"errors"
	"fmt"
	"strings"
)

// MaxNameLength is the longest DNS name accepted (RFC 1035 presentation
// form without the trailing dot).
const MaxNameLength = 253

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid DNS name")

// ParseDNS validates a DNS name a certificate is asked to carry and
// returns it normalized: lower case, without a trailing dot. Labels are
// letters, digits and hyphens (internationalized names must be in their
// xn-- form), 1-63 characters, not starting or ending with a hyphen. A
// wildcard name has "*" as its whole first label, followed by at least
// two labels ("*.svc.example.net", never "*.net" or "a*.example.net").
func ParseDNS(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(name) > MaxNameLength {
		return "", fmt.Errorf("%w: %q is longer than %d characters", ErrInvalid, s, MaxNameLength)
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if l == "*" && i == 0 {
			if len(labels) < 3 {
				return "", fmt.Errorf("%w: %q: a wildcard needs at least two labels after it", ErrInvalid, s)
			}
			continue
		}
		if err := checkLabel(l); err != nil {
			return "", fmt.Errorf("%w: %q: %w", ErrInvalid, s, err)
		}
	}
	return name, nil
}

// IsWildcard reports whether a name parsed by ParseDNS is a wildcard.
func IsWildcard(name string) bool { return strings.HasPrefix(name, "*.") }

func checkLabel(l string) error {
	switch {
	case l == "":
		return errors.New("empty label")
	case len(l) > 63:
		return fmt.Errorf("label %q is longer than 63 characters", l)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := range len(l) {
		c := l[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("label %q has the character %q (letters, digits and hyphens only)", l, c)
		}
	}
	return nil
}

// Depth is how many labels a pattern's wildcard stands for.
type Depth uint8

// The depths.
const (
	// Exact: the pattern is a plain name, matching only itself.
	Exact Depth = iota
	// One: "*.suffix", exactly one label before the suffix.
	One
	// Many: "**.suffix", one or more labels before the suffix.
	Many
)

// Pattern is a parsed name pattern.
type Pattern struct {
	depth Depth
	// suffix is the plain part: the whole name for Exact, what follows
	// "*." or "**." otherwise.
	suffix string
	labels int
}

// ParsePattern parses "host.example.net", "*.svc.example.net" or
// "**.example.net". The plain part follows ParseDNS's rules; a star may
// appear only as the whole first label.
func ParsePattern(s string) (Pattern, error) {
	p := strings.ToLower(strings.TrimSuffix(s, "."))
	depth := Exact
	switch {
	case strings.HasPrefix(p, "**."):
		depth, p = Many, p[3:]
	case strings.HasPrefix(p, "*."):
		depth, p = One, p[2:]
	}
	if p == "" {
		return Pattern{}, fmt.Errorf("%w: pattern %q has no name after its wildcard", ErrInvalid, s)
	}
	if len(p) > MaxNameLength {
		return Pattern{}, fmt.Errorf("%w: pattern %q is longer than %d characters", ErrInvalid, s, MaxNameLength)
	}
	labels := strings.Split(p, ".")
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return Pattern{}, fmt.Errorf("%w: pattern %q: %w (a star may only be the whole first label)", ErrInvalid, s, err)
		}
	}
	return Pattern{depth: depth, suffix: p, labels: len(labels)}, nil
}

// String is the pattern as written, normalized.
func (p Pattern) String() string {
	switch p.depth {
	case One:
		return "*." + p.suffix
	case Many:
		return "**." + p.suffix
	}
	return p.suffix
}

// Depth is the pattern's wildcard depth.
func (p Pattern) Depth() Depth { return p.depth }

// Match reports whether name, as returned by ParseDNS, is covered by the
// pattern. A wildcard name's "*" counts as one label, so "*.svc.x.net" is
// covered by "*.svc.x.net" and "**.x.net" but not by "a.svc.x.net"
// (whether a wildcard may be issued at all is the caller's decision).
func (p Pattern) Match(name string) bool {
	if p.suffix == "" {
		return false
	}
	if p.depth == Exact {
		return name == p.suffix
	}
	// The name must end with "." + suffix on a label boundary, and have
	// the right number of labels in front of it.
	if len(name) <= len(p.suffix)+1 || !strings.HasSuffix(name, p.suffix) || name[len(name)-len(p.suffix)-1] != '.' {
		return false
	}
	head := name[:len(name)-len(p.suffix)-1]
	if head == "" {
		return false
	}
	extra := strings.Count(head, ".") + 1
	for l := range strings.SplitSeq(head, ".") {
		if l == "" {
			return false
		}
	}
	if p.depth == One {
		return extra == 1
	}
	return extra >= 1
}
