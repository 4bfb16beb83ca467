package sink

import (
	"fmt"
	"path"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Route selects the events a sink receives. The zero Route matches every
// event. An event matches when its type matches one of Types (if any are set)
// and its aggregate type matches one of AggregateTypes (if any are set).
// Patterns are shell globs as in path.Match: "order.*", "*.created".
type Route struct {
	Types          []string
	AggregateTypes []string
}

// Validate checks every pattern.
func (r Route) Validate() error {
	for _, p := range append(append([]string(nil), r.Types...), r.AggregateTypes...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("route pattern %q: %w", p, err)
		}
	}
	return nil
}

// Match reports whether e is routed by r.
func (r Route) Match(e *event.Event) bool {
	return matchAny(r.Types, e.Type) && matchAny(r.AggregateTypes, e.AggregateType)
}

func matchAny(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}
