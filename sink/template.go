package sink

import (
	"fmt"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Template names a destination (topic, subject, stream) from event fields,
// with text/template syntax over [event.Event]: "outbox.{{.AggregateType}}".
// {{.Extension "name"}} gives an extension attribute's value ("" if absent).
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
	if err := tm.Execute(discard{}, view{&event.Event{}}); err != nil {
		return nil, fmt.Errorf("destination template %q: %w", s, err)
	}
	t.tmpl = tm
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
