package oci

import (
	"fmt"
	"regexp"
)

// MaxNameLength bounds a repository name (distribution's limit, which
// leaves room for a registry host in a full reference).
const MaxNameLength = 255

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// Name is a validated repository name ("team/app").
type Name string

// ParseName validates a repository name against the distribution spec's
// grammar.
func ParseName(s string) (Name, error) {
	if len(s) == 0 || len(s) > MaxNameLength || !nameRE.MatchString(s) {
		return "", NewError(ErrNameInvalid, fmt.Sprintf("invalid repository name %q", truncate(s)))
	}
	return Name(s), nil
}

// String returns the name.
func (n Name) String() string { return string(n) }

// ValidTag reports whether s is a valid tag.
func ValidTag(s string) bool { return tagRE.MatchString(s) }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
