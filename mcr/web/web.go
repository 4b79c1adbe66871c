// Package web holds MCR's embedded web UI assets: the HTML templates
// (templates/layout, templates/pages) and the stylesheet (static/).
package web

import "embed"

// FS holds templates/ and static/.
//
//go:embed templates static
var FS embed.FS
