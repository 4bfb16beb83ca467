package sink

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Template names a destination (topic, subject, stream) from event fields,
// with text/template syntax over [event.Event]: "outbox.{{.AggregateType}}".
// {{.Extension "name"}} gives an extension attribute's value ("" if absent);
// the built-in functions work too, so {{or .AggregateType "misc"}} gives a
// fallback for events without an aggregate type. A template without actions
// is returned as is. Templates that only use Type and AggregateType are
// cached per pair. Safe for concurrent use.
type Template struct {
	text   string
	tmpl   *template.Template // nil when text has no actions
	cached bool
	rules  DestinationRules
	fields []field // what the template reads, to name an empty one

	mu    sync.Mutex
	cache map[[2]string]string
}

// field is one event field (or extension) a template reads.
type field struct {
	name string             // "AggregateType", `Extension "tenant"`
	tmpl *template.Template // renders just that field
}

// ErrInvalidDestination is wrapped by every *DestinationError.
var ErrInvalidDestination = errors.New("invalid destination")

// DestinationRules say what a broker accepts as a destination name. The zero
// value accepts any name a template gives.
type DestinationRules struct {
	// Kind names the destination in messages: "topic", "subject", "stream".
	Kind string
	// Separators are the characters that join the parts of a name, such as
	// "." in "outbox.order". A template with actions must give a name that
	// is not empty, does not start or end with a separator and has no two
	// in a row: otherwise a field it reads was empty.
	Separators string
	// Check applies the broker's own naming rules (charset, length,
	// wildcards); nil accepts any name.
	Check func(name string) error
}

// DestinationError is an event whose destination cannot exist: its template
// gives a name the broker's rules refuse, usually because a field the
// template reads is empty on the event. It is a property of the event, so
// sinks report it as a *PermanentError and the sink's policy applies.
type DestinationError struct {
	Template string   // the template text
	Kind     string   // "topic", "subject", "stream"
	Name     string   // what the template gave
	EventID  string   // the event's CloudEvents id
	Source   string   // and source
	Empty    []string // the fields the template reads that the event leaves empty
	Err      error    // the rule the name breaks
}

func (e *DestinationError) Error() string {
	kind := e.Kind
	if kind == "" {
		kind = "destination"
	}
	var b strings.Builder
	if e.EventID == "" {
		fmt.Fprintf(&b, "destination template %q gives %s %q for an event with only id, source and type", e.Template, kind, e.Name)
	} else {
		fmt.Fprintf(&b, "destination template %q gives %s %q for event %s (source %s)", e.Template, kind, e.Name, e.EventID, e.Source)
	}
	for _, f := range e.Empty {
		b.WriteString(": " + f + " is empty")
	}
	b.WriteString(": " + e.Err.Error())
	if len(e.Empty) > 0 {
		f := "." + e.Empty[0]
		if strings.Contains(f, " ") {
			f = "(" + f + ")"
		}
		fmt.Fprintf(&b, "; give the template a fallback, such as {{or %s \"misc\"}}, or route such events elsewhere", f)
	}
	return b.String()
}

// Unwrap returns ErrInvalidDestination and the broken rule.
func (e *DestinationError) Unwrap() []error { return []error{ErrInvalidDestination, e.Err} }

// ParseDestination compiles s as a destination template that follows rules. A
// name without actions must pass rules.Check here; a rendered name is
// checked by Destination.
func ParseDestination(s string, rules DestinationRules) (*Template, error) {
	t, err := ParseTemplate(s)
	if err != nil {
		return nil, err
	}
	t.rules = rules
	if name, static := t.Static(); static && rules.Check != nil {
		if err := rules.Check(name); err != nil {
			return nil, fmt.Errorf("destination %q: %w", name, err)
		}
	}
	return t, nil
}

// Destination returns the destination for e, checked against the template's
// rules; a name that cannot exist is a *DestinationError.
func (t *Template) Destination(e *event.Event) (string, error) {
	name, err := t.Execute(e)
	if err != nil {
		return "", err
	}
	if err := t.check(name); err != nil {
		derr := &DestinationError{Template: t.text, Kind: t.rules.Kind, Name: name, EventID: e.ID, Source: e.Source, Err: err}
		for _, f := range t.fields {
			var b strings.Builder
			if f.tmpl.Execute(&b, view{e}) == nil && b.Len() == 0 {
				derr.Empty = append(derr.Empty, f.name)
			}
		}
		return "", derr
	}
	return name, nil
}

// Probe renders the template for an event with only the required
// attributes (id, source, type), as a logical message without an aggregate
// type is, and returns the *DestinationError such events would get; nil when
// they get a valid destination. Sinks' templates are probed at start, to
// warn.
func (t *Template) Probe() error {
	_, err := t.Destination(&event.Event{ID: "probe", Source: "/probe", Type: "probe"})
	var derr *DestinationError
	if !errors.As(err, &derr) {
		return nil
	}
	derr.EventID, derr.Source = "", ""
	return derr
}

func (t *Template) check(name string) error {
	if name == "" {
		return errors.New("it is empty")
	}
	if t.tmpl != nil && t.rules.Separators != "" {
		seps := t.rules.Separators
		if strings.IndexByte(seps, name[0]) >= 0 {
			return fmt.Errorf("it starts with %q", name[:1])
		}
		if strings.IndexByte(seps, name[len(name)-1]) >= 0 {
			return fmt.Errorf("it ends with %q", name[len(name)-1:])
		}
		for i := 1; i < len(name); i++ {
			if strings.IndexByte(seps, name[i-1]) >= 0 && strings.IndexByte(seps, name[i]) >= 0 {
				return fmt.Errorf("it has an empty part at %q", name[i-1:i+1])
			}
		}
	}
	if t.rules.Check != nil {
		return t.rules.Check(name)
	}
	return nil
}

// Templated is implemented by sinks that name destinations with templates;
// the fan-out probes them once at start and warns about the events they
// cannot place.
type Templated interface {
	Templates() []*Template
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
	if err := tm.Execute(discard{}, view{&event.Event{}}); err != nil {
		return nil, fmt.Errorf("destination template %q: %w", s, err)
	}
	t.tmpl = tm
	t.fields = readFields(tm.Tree.Root, nil)
	t.cached = onlyTypeFields(tm.Tree.Root)
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
	if err := t.tmpl.Execute(&b, view{e}); err != nil {
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

// view is what templates see: the event, with Extension returning one value.
type view struct{ *event.Event }

// Extension returns the value of the extension attribute name, or "".
func (v view) Extension(name string) string {
	s, _ := v.Event.Extension(name)
	return s
}

// readFields collects the event fields and extensions n reads (outside
// range and with, where dot is something else), each once.
func readFields(n parse.Node, out []field) []field {
	add := func(text string) {
		for _, f := range out {
			if f.name == text[1:] {
				return
			}
		}
		tm, err := template.New("field").Option("missingkey=error").Parse("{{" + text + "}}")
		if err == nil {
			out = append(out, field{name: text[1:], tmpl: tm})
		}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				out = readFields(c, out)
			}
		}
	case *parse.ActionNode:
		out = readFields(n.Pipe, out)
	case *parse.IfNode:
		out = readFields(n.Pipe, out)
		out = readFields(n.List, out)
		out = readFields(n.ElseList, out)
	case *parse.PipeNode:
		if n != nil {
			for _, c := range n.Cmds {
				out = readFields(c, out)
			}
		}
	case *parse.CommandNode:
		if len(n.Args) > 0 {
			if f, ok := n.Args[0].(*parse.FieldNode); ok {
				if len(f.Ident) == 1 && f.Ident[0] == "Extension" {
					add(n.String()) // .Extension "name"
				} else {
					add(f.String())
				}
				break
			}
		}
		for _, a := range n.Args {
			if f, ok := a.(*parse.FieldNode); ok {
				add(f.String())
			} else {
				out = readFields(a, out)
			}
		}
	}
	return out
}

// onlyTypeFields reports whether a template reads no event field other than
// .Type and .AggregateType, so that its result can be cached per pair.
func onlyTypeFields(n parse.Node) bool {
	switch n := n.(type) {
	case nil:
		return true
	case *parse.ListNode:
		if n == nil {
			return true
		}
		for _, c := range n.Nodes {
			if !onlyTypeFields(c) {
				return false
			}
		}
		return true
	case *parse.TextNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode, *parse.IdentifierNode, *parse.CommentNode:
		return true
	case *parse.FieldNode:
		return len(n.Ident) == 1 && (n.Ident[0] == "Type" || n.Ident[0] == "AggregateType")
	case *parse.ActionNode:
		return onlyTypeFields(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return true
		}
		for _, c := range n.Cmds {
			if !onlyTypeFields(c) {
				return false
			}
		}
		return true
	case *parse.CommandNode:
		for _, a := range n.Args {
			if !onlyTypeFields(a) {
				return false
			}
		}
		return true
	case *parse.IfNode:
		return onlyTypeFields(n.Pipe) && onlyTypeFields(n.List) && onlyTypeFields(n.ElseList)
	default: // dot, variables, chains, range, with, template calls
		return false
	}
}
