package supervise

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGroupJoinsAndRefusesAfterStop(t *testing.T) {
	var g Group
	release := make(chan struct{})
	boom := errors.New("boom")
	a, err := g.Go("a", func() error { <-release; return nil })
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Go("b", func() error { return boom })
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("b.Wait = %v, want boom", err)
	}
	if got := g.Running(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("Running = %v, want [a]", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx); err == nil || !strings.Contains(err.Error(), "still running: a") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a running task = %v, want it named and the deadline", err)
	}
	c, err := g.Go("c", func() error { t.Error("c ran after Stop"); return nil })
	if !errors.Is(err, ErrStopping) || !errors.Is(c.Err(), ErrStopping) {
		t.Fatalf("Go after Wait began = %v (task: %v), want ErrStopping", err, c.Err())
	}
	if err := WaitAll(ctx, a, b, c); err == nil || !strings.Contains(err.Error(), "still running: a:") {
		t.Fatalf("WaitAll with a running = %v, want a named", err)
	}
	close(release)
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Wait returned before a was done")
	}
	if a.Err() != nil || b.Err() != boom {
		t.Fatalf("Err = %v, %v", a.Err(), b.Err())
	}
}
