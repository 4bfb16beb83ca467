package handler

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// Handler handles one event. It returns nil when the event took effect; an
// error makes the Consumer retry it (see Config.Attempts) unless it is a
// [PermanentError]. ctx is done when the consumer stops for good: a handler
// should return then. Under an inbox, the handler's database writes go
// through inbox.Tx(ctx), the transaction the inbox row commits in.
type Handler func(ctx context.Context, e cloudevents.Event) error

// Middleware wraps a Handler: func(next Handler) Handler.
type Middleware func(Handler) Handler

// Router maps CloudEvents types to handlers.
//
// Register every handler before the router is used: Handle and Use panic
// once a Consumer or Sink started dispatching. Dispatch is safe for
// concurrent use.
type Router struct {
	mu       sync.Mutex
	frozen   bool
	exact    map[string]*route
	globs    []*route
	mw       []Middleware
	notFound Handler
}

type route struct {
	pattern string
	h       Handler // the registered handler with its own middleware
	chain   Handler // h inside the router's middleware, set when frozen
}

// NewRouter returns an empty router. An event whose type no handler matches
// is skipped (acknowledged, counted by Observer.Unrouted) unless NotFound
// sets a handler for it.
func NewRouter() *Router { return &Router{exact: map[string]*route{}} }

// Handle registers h for events whose type is pattern: an exact type
// ("com.example.order.created") or a glob as path.Match reads it
// ("com.example.order.*", "*.created"). An exact match wins over globs;
// among globs the first registered that matches wins. mw wrap h only.
// Handle panics on a malformed glob, on a pattern registered twice and after
// the router started dispatching.
func (r *Router) Handle(pattern string, h Handler, mw ...Middleware) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mustNotBeFrozen("Handle")
	if pattern == "" || h == nil {
		panic("handler: Handle needs a pattern and a handler")
	}
	if _, err := path.Match(pattern, ""); err != nil {
		panic(fmt.Sprintf("handler: pattern %q: %v", pattern, err))
	}
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	rt := &route{pattern: pattern, h: h}
	if !isGlob(pattern) {
		if _, dup := r.exact[pattern]; dup {
			panic(fmt.Sprintf("handler: pattern %q registered twice", pattern))
		}
		r.exact[pattern] = rt
		return
	}
	for _, g := range r.globs {
		if g.pattern == pattern {
			panic(fmt.Sprintf("handler: pattern %q registered twice", pattern))
		}
	}
	r.globs = append(r.globs, rt)
}

// Use adds middleware around every handler, the first given outermost. It
// panics after the router started dispatching.
func (r *Router) Use(mw ...Middleware) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mustNotBeFrozen("Use")
	r.mw = append(r.mw, mw...)
}

// NotFound sets the handler for events no pattern matches (with the
// router's middleware around it). Default: none, such events are skipped.
func (r *Router) NotFound(h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mustNotBeFrozen("NotFound")
	r.notFound = h
}

func (r *Router) mustNotBeFrozen(what string) {
	if r.frozen {
		panic("handler: Router." + what + " called after the router started dispatching")
	}
}

func isGlob(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// freeze builds every route's middleware chain once.
func (r *Router) freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return
	}
	r.frozen = true
	wrap := func(h Handler) Handler {
		for i := len(r.mw) - 1; i >= 0; i-- {
			h = r.mw[i](h)
		}
		return h
	}
	for _, rt := range r.exact {
		rt.chain = wrap(rt.h)
	}
	for _, rt := range r.globs {
		rt.chain = wrap(rt.h)
	}
	if r.notFound != nil {
		r.notFound = wrap(r.notFound)
	}
}

// Match returns the pattern and the handler (with every middleware) for an
// event type; ok is false when no handler matches and NotFound is unset.
// The pattern of a NotFound match is "".
func (r *Router) Match(typ string) (pattern string, h Handler, ok bool) {
	r.freeze()
	if rt, found := r.exact[typ]; found {
		return rt.pattern, rt.chain, true
	}
	for _, rt := range r.globs {
		if m, _ := path.Match(rt.pattern, typ); m {
			return rt.pattern, rt.chain, true
		}
	}
	if r.notFound != nil {
		return "", r.notFound, true
	}
	return "", nil, false
}
