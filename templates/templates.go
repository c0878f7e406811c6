// Package templates embeds the hosted UI's HTML templates.
package templates

import "embed"

// FS holds layout.html and one file per page.
//
//go:embed *.html
var FS embed.FS
