package file

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Issue 9: the file sink's output is not world-readable unless asked for.
func TestOpenCreatesPrivateFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode os.FileMode
		max  os.FileMode // the umask may take bits away, never add them
	}{{0, 0o600}, {0o640, 0o640}} {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		s, err := Open(Config{Path: path, Mode: tc.mode}, sink.Options{Name: "f"})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm&^tc.max != 0 || perm&0o600 != 0o600 {
			t.Errorf("mode %#o: created with %#o, want at most %#o and owner read/write", tc.mode, perm, tc.max)
		}
	}
	if err := (Config{Path: "/x", Mode: 0o1777}).Validate(); err == nil {
		t.Error("Validate accepted a mode with more than permission bits")
	}
}
