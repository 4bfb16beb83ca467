package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

// LetterSummary is one dead letter in a list.
type LetterSummary struct {
	ID            int64     `json:"id"`
	Sink          string    `json:"sink"` // "" for a row that could not be decoded
	EventID       string    `json:"event_id"`
	Table         string    `json:"source_table"`
	AggregateType string    `json:"aggregate_type,omitempty"`
	CommitLSN     string    `json:"commit_lsn"`
	Error         string    `json:"error"`
	Attempts      int       `json:"attempts"`
	LastFailedAt  time.Time `json:"last_failed_at"`
	// State is pending, replayed or discarded.
	State      string     `json:"state"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	ResolvedBy *string    `json:"resolved_by,omitempty"`
}

func summarize(l dlq.Letter) LetterSummary {
	return LetterSummary{ID: l.ID, Sink: l.Sink, EventID: l.EventID, Table: l.Table, AggregateType: l.AggregateType, CommitLSN: l.CommitLSN,
		Error: l.Error, Attempts: l.Attempts, LastFailedAt: l.LastFailedAt, State: l.Status, ResolvedAt: l.ResolvedAt, ResolvedBy: l.ResolvedBy}
}

// LetterPage is the body of GET /api/v1/dead-letters.
type LetterPage struct {
	DeadLetters []LetterSummary `json:"dead_letters"`
	Next        string          `json:"next,omitempty"`
}

// filter reads the dead-letter filter of a request: sink, state, q.
func letterFilter(r *http.Request) (dlq.Filter, error) {
	q := r.URL.Query()
	f := dlq.Filter{Sink: q.Get("sink"), Status: q.Get("state"), Query: q.Get("q")}
	switch f.Status {
	case "", dlq.StatusPending, dlq.StatusReplayed, dlq.StatusDiscarded:
	default:
		return f, fmt.Errorf("%w: state %q: want pending, replayed or discarded", errBadRequest, f.Status)
	}
	return f, nil
}

func (h *Handler) deadLetters(w http.ResponseWriter, r *http.Request) {
	f, err := letterFilter(r)
	if err == nil {
		f.Limit, err = pageSize(r)
	}
	if c := r.URL.Query().Get("cursor"); err == nil && c != "" {
		if f.After, err = strconv.ParseInt(c, 10, 64); err != nil {
			err = fmt.Errorf("%w: cursor %q is not one this API returned", errBadRequest, c)
		}
	}
	if err != nil {
		answerError(w, err)
		return
	}
	store, err := h.deadLetterStore(r.Context())
	if err != nil {
		answerError(w, err)
		return
	}
	limit := f.Limit
	f.Limit++
	ls, err := store.List(r.Context(), f)
	if err != nil {
		answerError(w, err)
		return
	}
	page := LetterPage{DeadLetters: []LetterSummary{}}
	for i, l := range ls {
		if i == limit {
			page.Next = strconv.FormatInt(ls[i-1].ID, 10)
			break
		}
		page.DeadLetters = append(page.DeadLetters, summarize(l))
	}
	writeJSON(w, http.StatusOK, page)
}

func letterID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a dead-letter id", errBadRequest, r.PathValue("id"))
	}
	return id, nil
}

func (h *Handler) deadLetter(w http.ResponseWriter, r *http.Request) {
	id, err := letterID(r)
	if err != nil {
		answerError(w, err)
		return
	}
	store, err := h.deadLetterStore(r.Context())
	if err != nil {
		answerError(w, err)
		return
	}
	l, err := store.Get(r.Context(), id)
	if err != nil {
		answerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// by is what a resolution records as its author.
func by(r *http.Request) string {
	p := principalOf(r)
	return "admin:" + p.Name
}

func (h *Handler) replay(w http.ResponseWriter, r *http.Request) {
	h.resolveOne(w, r, "replayed", func(ctx context.Context, s *dlq.Store, l dlq.Letter) error {
		return s.Replay(ctx, wiring.SinkOpener(h.cfg), l, by(r))
	})
}

func (h *Handler) discard(w http.ResponseWriter, r *http.Request) {
	h.resolveOne(w, r, "discarded", func(ctx context.Context, s *dlq.Store, l dlq.Letter) error {
		if l.Status != dlq.StatusPending {
			return fmt.Errorf("%w: its status is %s, not pending", dlq.ErrNotReplayable, l.Status)
		}
		return s.Resolve(ctx, l.ID, dlq.StatusDiscarded, by(r))
	})
}

func (h *Handler) resolveOne(w http.ResponseWriter, r *http.Request, done string, do func(context.Context, *dlq.Store, dlq.Letter) error) {
	id, err := letterID(r)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err)
		return
	}
	store, err := h.deadLetterStore(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	l, err := store.Get(r.Context(), id)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, dlq.ErrNotFound) {
			status = http.StatusNotFound
		}
		h.fail(w, r, status, err)
		return
	}
	if err := do(r.Context(), store, l); err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, dlq.ErrNotReplayable) {
			status = http.StatusConflict
		}
		h.fail(w, r, status, fmt.Errorf("dead letter %d: %w", id, err))
		return
	}
	h.audit(r, principalOf(r), http.StatusOK, fmt.Sprintf("dead letter %d (event %s, sink %s) %s", id, l.EventID, l.Sink, done))
	l, _ = store.Get(r.Context(), id)
	writeJSON(w, http.StatusOK, summarize(l))
}

// BulkResult is the body of the bulk replay and discard.
type BulkResult struct {
	Matched int `json:"matched"`
	Done    int `json:"done"`
	Failed  int `json:"failed"`
	// Errors are the first failures, one per letter.
	Errors []string `json:"errors,omitempty"`
}

// maxBulk bounds one bulk request; what is left is done by the next one.
const maxBulk = 10000

func (h *Handler) bulkReplay(w http.ResponseWriter, r *http.Request) {
	h.bulk(w, r, "replayed", func(ctx context.Context, s *dlq.Store, l dlq.Letter) error {
		return s.Replay(ctx, wiring.SinkOpener(h.cfg), l, by(r))
	})
}

func (h *Handler) bulkDiscard(w http.ResponseWriter, r *http.Request) {
	h.bulk(w, r, "discarded", func(ctx context.Context, s *dlq.Store, l dlq.Letter) error {
		return s.Resolve(ctx, l.ID, dlq.StatusDiscarded, by(r))
	})
}

// bulk resolves every pending letter the filter selects (state must be
// pending or absent), page by page.
func (h *Handler) bulk(w http.ResponseWriter, r *http.Request, done string, do func(context.Context, *dlq.Store, dlq.Letter) error) {
	f, err := letterFilter(r)
	if err == nil && f.Status != "" && f.Status != dlq.StatusPending {
		err = fmt.Errorf("%w: only pending dead letters can be %s", errBadRequest, done)
	}
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err)
		return
	}
	store, err := h.deadLetterStore(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	f.Status, f.Limit = dlq.StatusPending, 100
	var res BulkResult
	for res.Matched < maxBulk {
		ls, err := store.List(r.Context(), f)
		if err != nil {
			h.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		if len(ls) == 0 {
			break
		}
		for _, l := range ls {
			f.After = l.ID
			res.Matched++
			if err := do(r.Context(), store, l); err != nil {
				res.Failed++
				if len(res.Errors) < 10 {
					res.Errors = append(res.Errors, fmt.Sprintf("dead letter %d: %v", l.ID, err))
				}
				continue
			}
			res.Done++
		}
	}
	h.audit(r, principalOf(r), http.StatusOK, fmt.Sprintf("bulk: %d dead letters matched, %d %s, %d failed", res.Matched, res.Done, done, res.Failed))
	writeJSON(w, http.StatusOK, res)
}
