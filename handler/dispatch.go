package handler

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errStopped is returned by Submit after Drain began.
var errStopped = errors.New("handler: consumer is stopping")

// keyq holds the queued deliveries of one key; the head runs when running.
type keyq struct {
	key     string
	items   []*Delivery
	running bool
}

// dispatcher keeps per-key queues and a ready list of keys whose head can
// run. A key is on the ready list at most once and is run by one worker at
// a time, so deliveries of one key run in order. Lock order: mu only.
type dispatcher struct {
	mu      sync.Mutex
	cond    *sync.Cond // workers wait for ready keys
	keys    map[string]*keyq
	ready   []*keyq
	held    int // queued + running
	running int
	max     int
	notify  chan struct{} // closed and replaced when held or running drops
	closed  bool          // Drain began: Submit releases at once
	stopped bool          // workers exit
}

func newDispatcher(max int) *dispatcher {
	d := &dispatcher{keys: map[string]*keyq{}, max: max, notify: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	return d
}

// signal wakes Submit and Drain waiters; mu held.
func (d *dispatcher) signal() {
	close(d.notify)
	d.notify = make(chan struct{})
}

func (d *dispatcher) submit(ctx context.Context, dl *Delivery) error {
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			if dl.Release != nil {
				dl.Release()
			}
			return errStopped
		}
		if d.held < d.max {
			d.held++
			kq := d.keys[dl.Key]
			if kq == nil {
				kq = &keyq{key: dl.Key}
				d.keys[dl.Key] = kq
			}
			kq.items = append(kq.items, dl)
			if len(kq.items) == 1 && !kq.running {
				d.ready = append(d.ready, kq)
				d.cond.Signal()
			}
			d.mu.Unlock()
			return nil
		}
		ch := d.notify
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// next blocks until a key is ready and returns its head, or nil when the
// workers are to stop.
func (d *dispatcher) next() (*keyq, *Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.stopped {
			return nil, nil
		}
		for len(d.ready) > 0 {
			kq := d.ready[0]
			d.ready[0] = nil
			d.ready = d.ready[1:]
			if len(kq.items) == 0 || kq.running { // emptied by drop
				continue
			}
			kq.running = true
			d.running++
			return kq, kq.items[0]
		}
		d.cond.Wait()
	}
}

// done finishes the head of kq.
func (d *dispatcher) done(kq *keyq) {
	d.mu.Lock()
	kq.items[0] = nil
	kq.items = kq.items[1:]
	kq.running = false
	d.held--
	d.running--
	if len(kq.items) > 0 {
		d.ready = append(d.ready, kq)
		d.cond.Signal()
	} else if d.keys[kq.key] == kq {
		delete(d.keys, kq.key)
	}
	d.signal()
	d.mu.Unlock()
}

func (d *dispatcher) drop(match func(*Delivery) bool) int {
	var dropped []*Delivery
	d.mu.Lock()
	for key, kq := range d.keys {
		keep := kq.items[:0]
		for i, dl := range kq.items {
			if (i == 0 && kq.running) || !match(dl) {
				keep = append(keep, dl)
				continue
			}
			dropped = append(dropped, dl)
		}
		for i := len(keep); i < len(kq.items); i++ {
			kq.items[i] = nil
		}
		kq.items = keep
		if len(keep) == 0 && !kq.running {
			delete(d.keys, key)
		}
	}
	d.held -= len(dropped)
	if len(dropped) > 0 {
		d.signal()
	}
	d.mu.Unlock()
	for _, dl := range dropped {
		if dl.Release != nil {
			dl.Release()
		}
	}
	return len(dropped)
}

// close makes Submit release, drops everything queued and waits until
// nothing runs or timeout passed; it reports whether nothing runs.
func (d *dispatcher) close(timeout time.Duration) bool {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.drop(func(*Delivery) bool { return true })
	return d.waitIdle(timeout)
}

func (d *dispatcher) waitIdle(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		d.mu.Lock()
		if d.running == 0 {
			d.mu.Unlock()
			return true
		}
		ch := d.notify
		d.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}

// stop ends the workers once they return from what they run.
func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopped = true
	d.cond.Broadcast()
	d.mu.Unlock()
}

// pending returns how many deliveries are held (queued or running).
func (d *dispatcher) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held
}
