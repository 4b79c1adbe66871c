package server

import "sort"

// SealRequiredMethods lists the RPCs that answer Unavailable while
// sealed, for the tests of the sealed face.
func SealRequiredMethods() []string {
	var out []string
	for m := range methodMaps().SealRequired {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
