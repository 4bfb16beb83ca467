// Package supervise starts goroutines and joins them: whoever starts a
// goroutine through a Group can wait for it, name it while it runs, and know
// that none is started once shutdown began (the nats-server pattern of one
// helper that joins a WaitGroup and refuses after shutdown).
package supervise

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ErrStopping is returned by Go once Stop was called.
var ErrStopping = errors.New("supervise: shutting down; not starting another goroutine")

// Group starts named goroutines and joins them. The zero Group is ready to
// use; it must not be copied after first use. Its methods are safe for
// concurrent use.
type Group struct {
	mu       sync.Mutex
	wg       sync.WaitGroup
	stopping bool
	running  []*Task
}

// Task is one goroutine started by a Group.
type Task struct {
	name string
	done chan struct{}
	err  error
}

// Name returns the name given to Go.
func (t *Task) Name() string { return t.name }

// Done is closed when the task's function has returned.
func (t *Task) Done() <-chan struct{} { return t.done }

// Err returns what the task's function returned; nil before Done is closed.
func (t *Task) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// Wait blocks until the task returned or ctx is done, and returns the
// task's error, or ctx's.
func (t *Task) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
	}
	select {
	case <-t.done:
		return t.err
	default:
		return fmt.Errorf("%s did not stop: %w", t.name, context.Cause(ctx))
	}
}

// Go runs fn on a new goroutine that the Group joins. After Stop it starts
// nothing and returns ErrStopping, and a Task that is done with that error.
func (g *Group) Go(name string, fn func() error) (*Task, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := &Task{name: name, done: make(chan struct{})}
	if g.stopping {
		t.err = fmt.Errorf("%w (%s)", ErrStopping, name)
		close(t.done)
		return t, t.err
	}
	g.running = append(g.running, t)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		t.err = fn()
		g.mu.Lock()
		g.running = slices.DeleteFunc(g.running, func(r *Task) bool { return r == t })
		g.mu.Unlock()
		close(t.done)
	}()
	return t, nil
}

// Stop makes later calls to Go fail. It does not wait; it is idempotent.
func (g *Group) Stop() {
	g.mu.Lock()
	g.stopping = true
	g.mu.Unlock()
}

// Running returns the names of the tasks that have not returned yet, sorted.
func (g *Group) Running() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, len(g.running))
	for i, t := range g.running {
		names[i] = t.name
	}
	slices.Sort(names)
	return names
}

// WaitAll blocks until every task returned, or until ctx is done: then it
// returns an error naming the tasks still running.
func WaitAll(ctx context.Context, tasks ...*Task) error {
	var left []string
	for _, t := range tasks {
		select {
		case <-t.done:
			continue
		case <-ctx.Done():
		}
		select {
		case <-t.done:
		default:
			left = append(left, t.name)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("still running: %s: %w", strings.Join(left, ", "), context.Cause(ctx))
	}
	return nil
}

// Wait stops the Group (see Stop) and blocks until every task returned, or
// until ctx is done: then it returns an error naming the tasks still running,
// which are left behind.
func (g *Group) Wait(ctx context.Context) error {
	g.Stop()
	all := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(all)
	}()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
	}
	if left := g.Running(); len(left) > 0 {
		return fmt.Errorf("still running: %s: %w", strings.Join(left, ", "), context.Cause(ctx))
	}
	return nil
}
