// Package golden compares a generated file with the copy checked in, for the
// tests that keep generated docs (the configuration and command-line
// references) from going stale.
package golden

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// Check fails t unless the file at path holds exactly got. The failure names
// the file's first line that differs, both versions of it, and regenerate:
// the command that rewrites the file.
func Check(t testing.TB, path string, got []byte, regenerate string) {
	t.Helper()
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run %s", err, regenerate)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s is stale (first difference at line %d):\n  checked in: %s\n  generated:  %s\nrun: %s", path, i+1, w, g, regenerate)
		}
	}
}
