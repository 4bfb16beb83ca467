package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The console: hand-written HTML, CSS and JavaScript, embedded in the
// binary; no CDN, no build step. The chart is SVG drawn by console.js.
//
//go:embed web
var webFiles embed.FS

// consoleFiles serves the console under /admin/: its files, and
// index.html for /admin/ itself. They hold no data: every figure comes from
// the API, after sign-in.
func consoleFiles() http.Handler {
	sub, _ := fs.Sub(webFiles, "web")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/admin/")
		if name == "" || name == "index.html" {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		files.ServeHTTP(w, r2)
	})
}
