package sink

import (
	"fmt"
	"strings"
	"sync"
	"text/template"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Template names a destination (topic, subject, stream) from event fields,
// with text/template syntax over [event.Event]: "outbox.{{.AggregateType}}".
// A template without actions is returned as is. Templates that only use Type
// and AggregateType are cached per pair. Safe for concurrent use.
type Template struct {
	text   string
	tmpl   *template.Template // nil when text has no actions
	cached bool

	mu    sync.Mutex
	cache map[[2]string]string
}

const maxTemplateCache = 4096

// ParseTemplate compiles s. Unknown fields fail here, not at run time.
func ParseTemplate(s string) (*Template, error) {
	if s == "" {
		return nil, fmt.Errorf("empty destination template")
	}
	t := &Template{text: s}
	if !strings.Contains(s, "{{") {
		return t, nil
	}
	tm, err := template.New("destination").Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("destination template %q: %w", s, err)
	}
	if err := tm.Execute(discard{}, &event.Event{}); err != nil {
		return nil, fmt.Errorf("destination template %q: %w", s, err)
	}
	t.tmpl = tm
	t.cached = true
	for _, f := range []string{".ID", ".AggregateID", ".Subject", ".Source", ".Table", ".DataSchema", ".DataContentType", ".Extension", ".PartitionKey", ".Seq", ".CommitLSN", ".Time", ".CommitTime"} {
		if strings.Contains(s, f) {
			t.cached = false
		}
	}
	if t.cached {
		t.cache = make(map[[2]string]string)
	}
	return t, nil
}

// String returns the template text.
func (t *Template) String() string { return t.text }

// Static reports whether the template has no actions, and its text.
func (t *Template) Static() (string, bool) { return t.text, t.tmpl == nil }

// Execute returns the destination for e.
func (t *Template) Execute(e *event.Event) (string, error) {
	if t.tmpl == nil {
		return t.text, nil
	}
	var key [2]string
	if t.cached {
		key = [2]string{e.Type, e.AggregateType}
		t.mu.Lock()
		s, ok := t.cache[key]
		t.mu.Unlock()
		if ok {
			return s, nil
		}
	}
	var b strings.Builder
	if err := t.tmpl.Execute(&b, e); err != nil {
		return "", fmt.Errorf("destination template %q: %w", t.text, err)
	}
	s := b.String()
	if t.cached {
		t.mu.Lock()
		if len(t.cache) >= maxTemplateCache {
			clear(t.cache)
		}
		t.cache[key] = s
		t.mu.Unlock()
	}
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
