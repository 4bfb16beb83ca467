package sink_test

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

func TestRouteMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		route sink.Route
		typ   string
		agg   string
		want  bool
	}{
		{"zero route matches all", sink.Route{}, "anything", "", true},
		{"type exact", sink.Route{Types: []string{"order.created"}}, "order.created", "order", true},
		{"type exact mismatch", sink.Route{Types: []string{"order.created"}}, "order.deleted", "order", false},
		{"type prefix glob", sink.Route{Types: []string{"order.*"}}, "order.created", "", true},
		{"type suffix glob", sink.Route{Types: []string{"*.created"}}, "invoice.created", "", true},
		{"type suffix glob mismatch", sink.Route{Types: []string{"*.created"}}, "invoice.paid", "", false},
		{"glob is anchored", sink.Route{Types: []string{"order"}}, "order.created", "", false},
		{"question mark", sink.Route{Types: []string{"v?.order"}}, "v2.order", "", true},
		{"character class", sink.Route{Types: []string{"v[12].order"}}, "v3.order", "", false},
		{"star does not cross a slash", sink.Route{Types: []string{"com.example/*"}}, "com.example/a/b", "", false},
		{"any of several types", sink.Route{Types: []string{"a", "b.*"}}, "b.x", "", true},
		{"aggregate type", sink.Route{AggregateTypes: []string{"order"}}, "x", "order", true},
		{"aggregate type mismatch", sink.Route{AggregateTypes: []string{"order"}}, "x", "invoice", false},
		{"aggregate type glob", sink.Route{AggregateTypes: []string{"ord*"}}, "x", "order", true},
		{"aggregate type needed, none set", sink.Route{AggregateTypes: []string{"order"}}, "x", "", false},
		{"star matches an empty aggregate type", sink.Route{AggregateTypes: []string{"*"}}, "x", "", true},
		{"both must match", sink.Route{Types: []string{"*.created"}, AggregateTypes: []string{"order"}}, "order.created", "order", true},
		{"both: type fails", sink.Route{Types: []string{"*.created"}, AggregateTypes: []string{"order"}}, "order.paid", "order", false},
		{"both: aggregate fails", sink.Route{Types: []string{"*.created"}, AggregateTypes: []string{"order"}}, "order.created", "invoice", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := &event.Event{Type: tc.typ, AggregateType: tc.agg}
			if got := tc.route.Match(e); got != tc.want {
				t.Errorf("%+v.Match(type %q, aggregate type %q) = %v, want %v", tc.route, tc.typ, tc.agg, got, tc.want)
			}
		})
	}
}

func TestRouteValidate(t *testing.T) {
	t.Parallel()
	if err := (sink.Route{Types: []string{"order.*", "*.created"}, AggregateTypes: []string{"[a-z]*"}}).Validate(); err != nil {
		t.Errorf("valid route: %v", err)
	}
	for _, r := range []sink.Route{
		{Types: []string{"order.["}},
		{AggregateTypes: []string{"ok", "bad\\"}},
		{Types: []string{"[]"}},
	} {
		err := r.Validate()
		if !errors.Is(err, path.ErrBadPattern) {
			t.Errorf("%+v.Validate() = %v, want path.ErrBadPattern", r, err)
		}
		if err != nil && !strings.Contains(err.Error(), "route pattern") {
			t.Errorf("error %q does not say which pattern", err)
		}
	}
}
