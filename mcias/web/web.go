// Package web holds the MCIAS web UI's page templates and static files
// (stylesheet and the passkey script), embedded into the binary so a
// deployment is one file. The handlers that use them are in
// internal/webui.
package web

import "embed"

// FS holds templates/layouts/*.html (the page frame), templates/pages/*.html
// (one file per page) and static/ (served under /static/).
//
//go:embed templates static
var FS embed.FS
