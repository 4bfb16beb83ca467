package file

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// TestConformance runs the sink conformance suite against a file; every
// line must also be a valid CloudEvent.
func TestConformance(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, func(t *testing.T) sinktest.Destination {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		return sinktest.Destination{
			Open: func(t *testing.T, opts sink.Options) sink.Sink {
				s, err := Open(Config{Path: path}, opts)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			Read: func(t *testing.T, _ int) []string {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				var ids []string
				sc := bufio.NewScanner(f)
				for sc.Scan() {
					if err := sinktest.ValidateJSON(t, sc.Bytes()); err != nil {
						t.Fatalf("line %q is not a CloudEvent: %v", sc.Text(), err)
					}
					var v struct{ ID string }
					if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
						t.Fatal(err)
					}
					ids = append(ids, v.ID)
				}
				return ids
			},
		}
	})
}
