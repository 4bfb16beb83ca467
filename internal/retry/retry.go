// Package retry computes exponential backoff with full jitter and waits it out.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults for Backoff's zero fields.
const (
	DefaultInitial    = 100 * time.Millisecond
	DefaultMax        = 30 * time.Second
	DefaultMultiplier = 2.0
)

// Backoff is an exponential backoff schedule with full jitter: the delay before
// retry attempt n (counting from 1) is uniform in
// [0, min(Max, Initial·Multiplier^(n-1))]. The zero value uses the defaults.
// A Backoff is a value; it holds no state and is safe for concurrent use.
type Backoff struct {
	// Initial is the cap of the first delay. Default 100ms.
	Initial time.Duration
	// Max caps every delay. Default 30s.
	Max time.Duration
	// Multiplier grows the cap per attempt. Default 2.
	Multiplier float64
}

// Cap returns the upper bound of the delay before retry attempt n (n >= 1).
func (b Backoff) Cap(n int) time.Duration {
	initial, maxd, mult := b.Initial, b.Max, b.Multiplier
	if initial <= 0 {
		initial = DefaultInitial
	}
	if maxd <= 0 {
		maxd = DefaultMax
	}
	if mult < 1 {
		mult = DefaultMultiplier
	}
	d := float64(initial)
	for i := 1; i < n && d < float64(maxd); i++ {
		d *= mult
	}
	return time.Duration(min(d, float64(maxd)))
}

// Delay returns a delay for retry attempt n with full jitter: uniform in
// [0, Cap(n)]. Spreading retries over the whole range keeps many clients
// from hammering a recovering broker in step.
func (b Backoff) Delay(n int) time.Duration {
	c := b.Cap(n)
	if c <= 0 {
		return 0
	}
	return rand.N(c + 1)
}

// Sleep waits Delay(n) or until ctx is done, and returns ctx.Err() then.
func (b Backoff) Sleep(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(b.Delay(n))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
