package sink_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// dupObserver records what Options.Duplicate reports.
type dupObserver struct {
	dups   int
	others []uint64
}

func (*dupObserver) Acked(string, *event.Event)       {}
func (*dupObserver) Retried(string, error)            {}
func (o *dupObserver) Duplicate(string, *event.Event) { o.dups++ }
func (o *dupObserver) DuplicateOtherCommit(_ string, _ *event.Event, stored uint64) {
	o.others = append(o.others, stored)
}

// A duplicate with the stored LSN equal to the event's, or unknown, is a
// resend; with another LSN it is logged once with source, id and both LSNs
// and reported apart (or as a duplicate to an observer that cannot tell).
func TestOptionsDuplicate(t *testing.T) {
	t.Parallel()
	withLSN := &event.Event{ID: "1001", Source: "/shipping", CommitLSN: 0x1_0000_0200}
	extOnly := &event.Event{ID: "1001", Source: "/shipping", Extensions: []event.Extension{{Name: "pglsn", Value: "1/200"}}}
	noLSN := &event.Event{ID: "1001", Source: "/shipping"}
	for _, tc := range []struct {
		name      string
		e         *event.Event
		stored    uint64
		dups      int
		others    int
		logsOther bool
	}{
		{"same commit", withLSN, 0x1_0000_0200, 1, 0, false},
		{"same commit, LSN from the extension", extOnly, 0x1_0000_0200, 1, 0, false},
		{"stored LSN unknown", withLSN, 0, 1, 0, false},
		{"event LSN unknown", noLSN, 0x1_0000_0100, 1, 0, false},
		{"another commit", withLSN, 0x1_0000_0100, 0, 1, true},
		{"another commit, LSN from the extension", extOnly, 0x1_0000_0100, 0, 1, true},
	} {
		var logs bytes.Buffer
		obs := &dupObserver{}
		o := sink.Options{Name: "bus", Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		o.Duplicate(tc.e, tc.stored)
		if obs.dups != tc.dups || len(obs.others) != tc.others {
			t.Errorf("%s: %d duplicates, %d from another commit; want %d and %d", tc.name, obs.dups, len(obs.others), tc.dups, tc.others)
		}
		if !tc.logsOther {
			if logs.Len() != 0 {
				t.Errorf("%s: logged %q", tc.name, logs.String())
			}
			continue
		}
		if obs.others[0] != tc.stored {
			t.Errorf("%s: stored LSN %#x reported, want %#x", tc.name, obs.others[0], tc.stored)
		}
		for _, want := range []string{"sink=bus", "source=/shipping", "id=1001", "lsn=1/200", "stored_lsn=1/100"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("%s: log %q has no %q", tc.name, logs.String(), want)
			}
		}
		if n := strings.Count(logs.String(), "\n"); n != 1 {
			t.Errorf("%s: %d log lines, want 1", tc.name, n)
		}
	}

	// An observer without DuplicateOtherCommit still hears of it.
	var n int
	o := sink.Options{Name: "bus", Observer: plainObserver{dup: func() { n++ }}}.WithDefaults()
	o.Duplicate(withLSN, 0x1_0000_0100)
	if n != 1 {
		t.Errorf("plain observer told %d times, want 1", n)
	}
}

type plainObserver struct{ dup func() }

func (plainObserver) Acked(string, *event.Event)       {}
func (plainObserver) Retried(string, error)            {}
func (p plainObserver) Duplicate(string, *event.Event) { p.dup() }
