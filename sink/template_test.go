package sink_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

func TestTemplateStatic(t *testing.T) {
	t.Parallel()
	tm, err := sink.ParseTemplate("outbox.events")
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := tm.Static(); !ok || s != "outbox.events" {
		t.Errorf("Static = %q, %v; want outbox.events, true", s, ok)
	}
	got, err := tm.Execute(&event.Event{AggregateType: "order"})
	if err != nil || got != "outbox.events" {
		t.Errorf("Execute = %q, %v", got, err)
	}
	if tm.String() != "outbox.events" {
		t.Errorf("String = %q", tm.String())
	}
}

func TestTemplateExecute(t *testing.T) {
	t.Parallel()
	e := &event.Event{
		ID: "id-1", Type: "order.created", AggregateType: "order", AggregateID: "42",
		Extensions: []event.Extension{{Name: "tenant", Value: "acme"}},
	}
	for _, tc := range []struct {
		text string
		want string
	}{
		{"outbox.{{.AggregateType}}", "outbox.order"},
		{"{{.Type}}", "order.created"},
		{"{{.AggregateType}}-{{.AggregateID}}", "order-42"},
		{"{{.PartitionKey}}", "42"},
		{`{{range .Extensions}}{{if eq .Name "tenant"}}{{.Value}}{{end}}{{end}}.events`, "acme.events"},
		{`t.{{if .AggregateType}}{{.AggregateType}}{{else}}none{{end}}`, "t.order"},
	} {
		tm, err := sink.ParseTemplate(tc.text)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tc.text, err)
			continue
		}
		if _, ok := tm.Static(); ok {
			t.Errorf("%q reported static", tc.text)
		}
		if got, err := tm.Execute(e); err != nil || got != tc.want {
			t.Errorf("%q.Execute = %q, %v; want %q", tc.text, got, err, tc.want)
		}
	}
}

func TestParseTemplateErrors(t *testing.T) {
	t.Parallel()
	for _, text := range []string{
		"",
		"outbox.{{.Nope}}",
		"outbox.{{.AggregateTyp}}",
		"outbox.{{.AggregateType",
		"{{.AggregateType | nosuchfunc}}",
		"{{.Extension}}", // a method that takes an argument
	} {
		if _, err := sink.ParseTemplate(text); err == nil {
			t.Errorf("ParseTemplate(%q) succeeded, want an error", text)
		} else if text != "" && !strings.Contains(err.Error(), text) {
			t.Errorf("ParseTemplate(%q) = %v: the error does not quote the template", text, err)
		}
	}
}

// TestTemplateCacheKeepsAggregateTypesApart executes a cached template for
// many aggregate types, concurrently and repeatedly: each gets its own name.
func TestTemplateCacheKeepsAggregateTypesApart(t *testing.T) {
	t.Parallel()
	tm, err := sink.ParseTemplate("outbox.{{.AggregateType}}.{{.Type}}")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				agg := fmt.Sprintf("agg%d", (i+g)%50)
				typ := fmt.Sprintf("type%d", i%7)
				got, err := tm.Execute(&event.Event{AggregateType: agg, Type: typ})
				if want := "outbox." + agg + "." + typ; err != nil || got != want {
					t.Errorf("Execute(%s, %s) = %q, %v; want %q", agg, typ, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestTemplateUncachedFields: templates over per-event fields are not served
// from the (type, aggregate type) cache.
func TestTemplateUncachedFields(t *testing.T) {
	t.Parallel()
	for _, text := range []string{
		"k.{{.AggregateID}}",
		"k.{{.ID}}",
		"k.{{.Subject}}",
		"k.{{.PartitionKey}}",
		`k.{{range .Extensions}}{{.Value}}{{end}}`,
		"k.{{.Seq}}",
	} {
		tm, err := sink.ParseTemplate(text)
		if err != nil {
			t.Fatal(err)
		}
		a := &event.Event{ID: "1", Type: "t", AggregateType: "a", AggregateID: "x", Subject: "s1", Seq: 1,
			Extensions: []event.Extension{{Name: "tenant", Value: "t1"}}}
		b := &event.Event{ID: "2", Type: "t", AggregateType: "a", AggregateID: "y", Subject: "s2", Seq: 2,
			Extensions: []event.Extension{{Name: "tenant", Value: "t2"}}}
		ga, _ := tm.Execute(a)
		gb, _ := tm.Execute(b)
		if ga == gb {
			t.Errorf("%q gives %q for two events that differ in that field", text, ga)
		}
	}
}

func TestTemplateCacheOnlyTypeFields(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"k.{{.Size}}", "k.{{.DataKind}}", `k.{{printf "%s" .Data}}`} {
		tm, err := sink.ParseTemplate(text)
		if err != nil {
			t.Fatal(err)
		}
		a := &event.Event{Type: "t", AggregateType: "a", Size: 1, DataKind: event.DataJSON, Data: []byte("1")}
		b := &event.Event{Type: "t", AggregateType: "a", Size: 2, DataKind: event.DataText, Data: []byte("2")}
		ga, _ := tm.Execute(a)
		gb, _ := tm.Execute(b)
		if ga == gb {
			t.Errorf("%q gives %q for two events that differ in that field", text, ga)
		}
	}
}

func TestTemplateExtension(t *testing.T) {
	t.Parallel()
	tm, err := sink.ParseTemplate(`{{.Extension "tenant"}}.events`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"acme", "globex"} {
		e := &event.Event{Type: "t", AggregateType: "a", Extensions: []event.Extension{{Name: "tenant", Value: tenant}}}
		if got, err := tm.Execute(e); err != nil || got != tenant+".events" {
			t.Errorf("Execute = %q, %v; want %s.events", got, err, tenant)
		}
	}
}

func TestDestination(t *testing.T) {
	t.Parallel()
	dot := sink.DestinationRules{Kind: "subject", Separators: "._-"}
	full := &event.Event{ID: "e-1", Source: "/s", Type: "order.created", AggregateType: "order",
		Extensions: []event.Extension{{Name: "tenant", Value: "acme"}}}
	bare := &event.Event{ID: "e-2", Source: "/s", Type: "order.created"}
	for _, tc := range []struct {
		text string
		e    *event.Event
		want string   // the name, or "" for an error
		errs []string // what the error must say
	}{
		{"outbox.{{.AggregateType}}", full, "outbox.order", nil},
		{"outbox.{{.AggregateType}}", bare, "", []string{`template "outbox.{{.AggregateType}}" gives subject "outbox."`, "event e-2 (source /s)", "AggregateType is empty", `ends with "."`, `{{or .AggregateType "misc"}}`}},
		{`outbox.{{or .AggregateType "misc"}}`, bare, "outbox.misc", nil},
		{"{{.AggregateType}}.events", bare, "", []string{"AggregateType is empty", `starts with "."`}},
		{"outbox.{{.AggregateType}}.{{.Type}}", bare, "", []string{"AggregateType is empty", `empty part at ".."`}},
		{"{{.AggregateType}}", bare, "", []string{"AggregateType is empty", "it is empty"}},
		{`t.{{.Extension "tenant"}}`, full, "t.acme", nil},
		{`t.{{.Extension "tenant"}}`, bare, "", []string{`Extension "tenant" is empty`, `{{or (.Extension "tenant") "misc"}}`}},
		{`t.{{if .AggregateType}}{{.AggregateType}}{{else}}none{{end}}`, bare, "t.none", nil},
	} {
		tm, err := sink.ParseDestination(tc.text, dot)
		if err != nil {
			t.Fatalf("ParseDestination(%q): %v", tc.text, err)
		}
		got, err := tm.Destination(tc.e)
		if tc.want != "" {
			if err != nil || got != tc.want {
				t.Errorf("%q for %s = %q, %v; want %q", tc.text, tc.e.ID, got, err, tc.want)
			}
			continue
		}
		var derr *sink.DestinationError
		if !errors.As(err, &derr) || !errors.Is(err, sink.ErrInvalidDestination) {
			t.Errorf("%q for %s = %q, %v; want a *DestinationError", tc.text, tc.e.ID, got, err)
			continue
		}
		for _, want := range tc.errs {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q for %s: error %q does not say %q", tc.text, tc.e.ID, err, want)
			}
		}
	}
}

func TestDestinationBrokerRules(t *testing.T) {
	t.Parallel()
	refuse := errors.New("no capitals")
	rules := sink.DestinationRules{Kind: "topic", Check: func(s string) error {
		if strings.ToLower(s) != s {
			return refuse
		}
		return nil
	}}
	if _, err := sink.ParseDestination("Orders", rules); !errors.Is(err, refuse) {
		t.Errorf("a static name the broker refuses: %v", err)
	}
	tm, err := sink.ParseDestination("{{.Type}}", rules)
	if err != nil {
		t.Fatal(err)
	}
	// Without separators, "_x" is the broker's business only.
	if _, err := tm.Destination(&event.Event{ID: "a", Type: "_x"}); err != nil {
		t.Errorf("_x: %v", err)
	}
	if _, err := tm.Destination(&event.Event{ID: "b", Type: "X"}); !errors.Is(err, refuse) || !errors.Is(err, sink.ErrInvalidDestination) {
		t.Errorf("X: %v, want the broker's rule", err)
	}
}

func TestTemplateProbe(t *testing.T) {
	t.Parallel()
	dot := sink.DestinationRules{Kind: "subject", Separators: "."}
	for text, bad := range map[string]bool{
		"outbox.{{.AggregateType}}":             true,
		"outbox.{{.Subject}}":                   true,
		`outbox.{{or .AggregateType "misc"}}`:   false,
		"outbox.{{.Type}}":                      false,
		"outbox.events":                         false,
		`{{.Extension "tenant"}}.events`:        true,
		`outbox.{{if .AggregateType}}x{{end}}y`: false,
	} {
		tm, err := sink.ParseDestination(text, dot)
		if err != nil {
			t.Fatal(err)
		}
		err = tm.Probe()
		if (err != nil) != bad {
			t.Errorf("Probe(%q) = %v; want an error: %v", text, err, bad)
		}
		if err != nil && !strings.Contains(err.Error(), "for an event with only id, source and type") {
			t.Errorf("Probe(%q) = %v", text, err)
		}
	}
}
