// Package static embeds the UI's stylesheet, scripts and icons.
package static

import "embed"

// FS is served under /static/.
//
//go:embed *.css *.svg *.js *.js
var FS embed.FS
