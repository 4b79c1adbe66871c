// Package web holds Metacrypt's embedded web UI assets: the HTML
// templates (templates/layout, templates/pages) and the stylesheet
// (static/). The pages carry no scripts and no inline styles, so the
// Content-Security-Policy can stay default-src 'self'.
package web

import "embed"

// FS holds templates/ and static/.
//
//go:embed templates static
var FS embed.FS
