// Package web holds MCAT's templates and static files, embedded into the
// binary.
package web

import "embed"

// FS holds templates/ (layout and pages, for mcdsl/web.NewRenderer) and
// static/.
//
//go:embed templates static
var FS embed.FS
