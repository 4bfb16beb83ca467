package sink_test

import (
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
