package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/retry"
)

func TestCap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		b    retry.Backoff
		want []time.Duration // Cap(1), Cap(2), ...
	}{
		{"doubling", retry.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}},
		{"tripling", retry.Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 3},
			[]time.Duration{10 * time.Millisecond, 30 * time.Millisecond, 90 * time.Millisecond, 270 * time.Millisecond, 810 * time.Millisecond, time.Second}},
		{"one and a half", retry.Backoff{Initial: time.Second, Max: 3 * time.Second, Multiplier: 1.5},
			[]time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond, 3 * time.Second}},
		{"multiplier 1 is constant", retry.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 1},
			[]time.Duration{time.Second, time.Second, time.Second}},
		{"max below initial", retry.Backoff{Initial: time.Second, Max: 100 * time.Millisecond, Multiplier: 2},
			[]time.Duration{100 * time.Millisecond, 100 * time.Millisecond}},
		{"zero value uses defaults", retry.Backoff{},
			[]time.Duration{retry.DefaultInitial, 2 * retry.DefaultInitial, 4 * retry.DefaultInitial}},
		{"multiplier below 1 uses the default", retry.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 0.5},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for i, want := range tc.want {
				if got := tc.b.Cap(i + 1); got != want {
					t.Errorf("Cap(%d) = %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

func TestCapDefaults(t *testing.T) {
	t.Parallel()
	var b retry.Backoff
	if got := b.Cap(1); got != retry.DefaultInitial {
		t.Errorf("zero Backoff Cap(1) = %v, want %v", got, retry.DefaultInitial)
	}
	if got := b.Cap(1000); got != retry.DefaultMax {
		t.Errorf("zero Backoff Cap(1000) = %v, want %v", got, retry.DefaultMax)
	}
	if retry.DefaultMultiplier != 2 {
		t.Errorf("DefaultMultiplier = %v, documented as 2", retry.DefaultMultiplier)
	}
}

// TestCapLargeAttempts: huge attempt numbers neither overflow nor loop
// forever; the cap stays at Max and never shrinks.
func TestCapLargeAttempts(t *testing.T) {
	t.Parallel()
	b := retry.Backoff{Initial: time.Nanosecond, Max: 365 * 24 * time.Hour, Multiplier: 10}
	prev := time.Duration(0)
	for _, n := range []int{1, 2, 10, 30, 64, 1000, 1 << 30} {
		got := b.Cap(n)
		if got < prev || got > b.Max || got <= 0 {
			t.Errorf("Cap(%d) = %v after %v, want within (0, %v] and not shrinking", n, got, prev, b.Max)
		}
		prev = got
	}
	if got := b.Cap(1 << 30); got != b.Max {
		t.Errorf("Cap(1<<30) = %v, want Max %v", got, b.Max)
	}
}

func TestDelayWithinBoundsAndSpread(t *testing.T) {
	t.Parallel()
	for _, b := range []retry.Backoff{
		{},
		{Initial: 10 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2},
		{Initial: time.Second, Max: time.Second, Multiplier: 3},
	} {
		for _, n := range []int{1, 3, 8, 20} {
			c := b.Cap(n)
			lo := time.Duration(0) // full jitter
			seen := map[time.Duration]bool{}
			var below, above int
			for range 2000 {
				d := b.Delay(n)
				if d < lo || d > c {
					t.Fatalf("%+v Delay(%d) = %v, outside [%v, %v]", b, n, d, lo, c)
				}
				seen[d] = true
				// Spread: both halves of the range are used.
				if d < lo+(c-lo)/2 {
					below++
				} else {
					above++
				}
			}
			if len(seen) < 1000 {
				t.Errorf("%+v Delay(%d): only %d distinct values in 2000 draws", b, n, len(seen))
			}
			if below < 700 || above < 700 {
				t.Errorf("%+v Delay(%d): %d draws in the lower half, %d in the upper; want roughly even", b, n, below, above)
			}
		}
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	b := retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond}
	if err := b.Sleep(context.Background(), 1); err != nil {
		t.Errorf("Sleep = %v, want nil", err)
	}
}

func TestSleepHonoursContext(t *testing.T) {
	t.Parallel()
	b := retry.Backoff{Initial: time.Hour, Max: time.Hour}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := b.Sleep(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with a cancelled context = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Sleep(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sleep past the deadline = %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("Sleep took %v despite the context", el)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Sleep(ctx, 5) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep cancelled midway = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sleep did not return after cancel")
	}
}

func TestSleepCancelledContextAlwaysWins(t *testing.T) {
	t.Parallel()
	b := retry.Backoff{Initial: time.Nanosecond, Max: time.Nanosecond}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 200; i++ {
		time.Sleep(time.Microsecond) // let the timer fire first
		if err := b.Sleep(ctx, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("draw %d: Sleep with a cancelled context = %v, want context.Canceled", i, err)
		}
	}
}
