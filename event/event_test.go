package event_test

import (
	"encoding/json"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/event"
)

func TestPartitionKeyAndExtension(t *testing.T) {
	t.Parallel()
	e := &event.Event{ID: "id-1", Extensions: []event.Extension{{Name: "a", Value: "1"}, {Name: "b", Value: ""}}}
	if got := e.PartitionKey(); got != "id-1" {
		t.Errorf("PartitionKey without aggregate id = %q, want the event id", got)
	}
	e.AggregateID = "agg"
	if got := e.PartitionKey(); got != "agg" {
		t.Errorf("PartitionKey = %q, want agg", got)
	}
	if v, ok := e.Extension("a"); !ok || v != "1" {
		t.Errorf("Extension(a) = %q, %v", v, ok)
	}
	if v, ok := e.Extension("b"); !ok || v != "" {
		t.Errorf("Extension(b) = %q, %v; an empty value is still present", v, ok)
	}
	if _, ok := e.Extension("c"); ok {
		t.Error("Extension(c) found")
	}
}

// FuzzAppendJSONString: the output is always one valid JSON string that
// decodes back to the input, with each invalid UTF-8 byte replaced by U+FFFD
// (as encoding/json does), and never holds a raw control character or
// U+2028/U+2029.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := event.AppendJSONString([]byte("x"), s)[1:]
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendJSONString(%q) = %q: %v", s, out, err)
		}
		// Ranging over a string yields U+FFFD for each invalid byte.
		if want := string([]rune(s)); got != want {
			t.Errorf("AppendJSONString(%q) decodes to %q, want %q", s, got, want)
		}
		std, _ := json.Marshal(s)
		var stdGot string
		if err := json.Unmarshal(std, &stdGot); err != nil || stdGot != got {
			t.Errorf("encoding/json decodes to %q, ours to %q", stdGot, got)
		}
		checkEscaped(t, s, out)
	})
}
