package oci

import (
	"fmt"
	"slices"
	"strings"
)

// Actions on a repository.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
)

// Resource types of a token scope.
const (
	ResourceRepository = "repository"
	ResourceRegistry   = "registry"
)

// CatalogName is the registry resource of the catalog ("registry:catalog:*").
const CatalogName = "catalog"

// Access is one resource and the actions wanted or granted on it: a
// Docker token scope "repository:team/app:pull,push".
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String is the scope form of a.
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// Allows reports whether a grants action (or "*").
func (a Access) Allows(action string) bool {
	return slices.Contains(a.Actions, action) || slices.Contains(a.Actions, "*")
}

// ParseScopes parses the scope parameters of a token request; each may
// hold several space-separated scopes. A resource type may carry a class
// ("repository(plugin)"), which is ignored. Unknown resource types are an
// error; "*" on a repository means every action.
func ParseScopes(params []string) ([]Access, error) {
	var out []Access
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			a, err := parseScope(s)
			if err != nil {
				return nil, err
			}
			out = mergeAccess(out, a)
		}
	}
	return out, nil
}

func parseScope(s string) (Access, error) {
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first <= 0 || last == first {
		return Access{}, fmt.Errorf("scope %q: want type:name:actions", truncate(s))
	}
	typ, name, actions := s[:first], s[first+1:last], s[last+1:]
	if i := strings.IndexByte(typ, '('); i > 0 && strings.HasSuffix(typ, ")") {
		typ = typ[:i]
	}
	var acts []string
	for a := range strings.SplitSeq(actions, ",") {
		if a != "" && !slices.Contains(acts, a) {
			acts = append(acts, a)
		}
	}
	switch typ {
	case ResourceRepository:
		if _, err := ParseName(name); err != nil {
			return Access{}, fmt.Errorf("scope %q: %w", truncate(s), err)
		}
		for _, a := range acts {
			switch a {
			case ActionPull, ActionPush, ActionDelete, "*":
			default:
				return Access{}, fmt.Errorf("scope %q: unknown action %q", truncate(s), a)
			}
		}
	case ResourceRegistry:
		if name != CatalogName {
			return Access{}, fmt.Errorf("scope %q: unknown registry resource", truncate(s))
		}
	default:
		return Access{}, fmt.Errorf("scope %q: unknown resource type %q", truncate(s), typ)
	}
	return Access{Type: typ, Name: name, Actions: acts}, nil
}

// mergeAccess adds a to list, merging actions on the same resource.
func mergeAccess(list []Access, a Access) []Access {
	for i := range list {
		if list[i].Type == a.Type && list[i].Name == a.Name {
			for _, act := range a.Actions {
				if !slices.Contains(list[i].Actions, act) {
					list[i].Actions = append(list[i].Actions, act)
				}
			}
			return list
		}
	}
	return append(list, a)
}
