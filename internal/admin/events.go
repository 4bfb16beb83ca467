package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/internal/backfill"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

// Paging of searches.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// tableMeta is what a search needs of one outbox table.
type tableMeta struct {
	name   string // schema.table as configured
	quoted string
	cols   decoder.Columns
	types  map[string]string // column -> format_type
}

// has reports whether the table has the mapped column c.
func (m *tableMeta) has(c string) bool {
	_, ok := m.types[c]
	return c != "" && c != "-" && ok
}

func (m *tableMeta) col(c string) string { return "o." + pgx.Identifier{c}.Sanitize() }

// cast is a parameter cast to column c's type: ($n::text)::type.
func (m *tableMeta) cast(param, c string) string { return "(" + param + "::text)::" + m.types[c] }

// tableOf returns the configured table named name ("" for the first).
func (h *Handler) tableOf(ctx context.Context, pool *pgxpool.Pool, name string) (*tableMeta, error) {
	tables := wiring.Decoder(h.cfg).WithDefaults().Tables
	var t *decoder.Table
	for i := range tables {
		if name == "" || tables[i].Name == name || tables[i].Name == "public."+name {
			t = &tables[i]
			break
		}
	}
	if t == nil {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.Name
		}
		return nil, fmt.Errorf("%w: %s is not a configured outbox table (configured: %s)", errBadRequest, name, strings.Join(names, ", "))
	}
	h.mu.Lock()
	m, ok := h.meta[t.Name]
	h.mu.Unlock()
	if ok {
		return m, nil
	}
	schema, rel, _ := strings.Cut(t.Name, ".")
	m = &tableMeta{name: t.Name, quoted: pgx.Identifier{schema, rel}.Sanitize(), cols: t.Columns, types: map[string]string{}}
	rows, err := pool.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, m.quoted)
	if err != nil {
		return nil, err
	}
	var c, typ string
	if _, err := pgx.ForEachRow(rows, []any{&c, &typ}, func() error { m.types[c] = typ; return nil }); err != nil {
		return nil, err
	}
	if len(m.types) == 0 {
		return nil, fmt.Errorf("outbox table %s does not exist (run `outbox-cdc setup`)", t.Name)
	}
	h.mu.Lock()
	h.meta[t.Name] = m
	h.mu.Unlock()
	return m, nil
}

var errBadRequest = errors.New("bad request")

// EventSummary is one row of a search.
type EventSummary struct {
	Table         string     `json:"table"`
	ID            string     `json:"id"`
	Type          string     `json:"type"`
	Source        string     `json:"source,omitempty"`
	Subject       string     `json:"subject,omitempty"`
	AggregateType string     `json:"aggregate_type,omitempty"`
	AggregateID   string     `json:"aggregate_id,omitempty"`
	Time          *time.Time `json:"time,omitempty"`
}

// EventPage is the body of GET /api/v1/events.
type EventPage struct {
	Events []EventSummary `json:"events"`
	// Next is the cursor of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
	// ServerMillis is the time the search took in the database.
	ServerMillis float64 `json:"server_ms"`
}

// cursor is the keyset of the last row of a page: its time and id as text.
type cursor struct {
	Table string  `json:"t"`
	Time  *string `json:"ts,omitempty"`
	ID    string  `json:"id"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, fmt.Errorf("%w: cursor %q is not one this API returned", errBadRequest, s)
	}
	return c, nil
}

func pageSize(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, fmt.Errorf("%w: limit %q: want 1 to %d", errBadRequest, s, MaxPageSize)
	}
	return n, nil
}

// searchEvents runs one page of a search, newest first, with keyset paging
// on (time, id): every filter is an equality or a range that the indexes
// setup creates serve (see schema.SearchIndexSQL).
func (h *Handler) searchEvents(ctx context.Context, r *http.Request) (EventPage, error) {
	q := r.URL.Query()
	pool, err := h.searchPool(ctx)
	if err != nil {
		return EventPage{}, err
	}
	table := q.Get("table")
	var cur *cursor
	if s := q.Get("cursor"); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			return EventPage{}, err
		}
		cur, table = &c, c.Table
	}
	m, err := h.tableOf(ctx, pool, table)
	if err != nil {
		return EventPage{}, err
	}
	limit, err := pageSize(r)
	if err != nil {
		return EventPage{}, err
	}
	cols := m.cols
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	for _, f := range []struct{ param, col string }{
		{"id", cols.ID}, {"type", cols.Type}, {"aggregate_type", cols.AggregateType}, {"aggregate_id", cols.AggregateID},
	} {
		v := q.Get(f.param)
		if v == "" {
			continue
		}
		if !m.has(f.col) {
			return EventPage{}, fmt.Errorf("%w: table %s has no %s column to search by", errBadRequest, m.name, f.param)
		}
		where = append(where, m.col(f.col)+" = "+m.cast(arg(v), f.col))
	}
	hasTime := m.has(cols.Time)
	for _, f := range []struct{ param, op string }{{"from", ">="}, {"to", "<"}} {
		v := q.Get(f.param)
		if v == "" {
			continue
		}
		if !hasTime {
			return EventPage{}, fmt.Errorf("%w: table %s has no time column to search by %s", errBadRequest, m.name, f.param)
		}
		where = append(where, m.col(cols.Time)+" "+f.op+" "+m.cast(arg(v), cols.Time))
	}
	order := m.col(cols.ID) + " DESC"
	if hasTime {
		order = m.col(cols.Time) + " DESC, " + order
	}
	if cur != nil {
		id := m.cast(arg(cur.ID), cols.ID)
		if hasTime && cur.Time != nil {
			t := m.cast(arg(*cur.Time), cols.Time)
			// The first condition alone lets an index on the time column
			// start the scan at the cursor.
			where = append(where, fmt.Sprintf("%s <= %s AND (%s, %s) < (%s, %s)", m.col(cols.Time), t, m.col(cols.Time), m.col(cols.ID), t, id))
		} else {
			where = append(where, m.col(cols.ID)+" < "+id)
		}
	}
	sel := func(c string) string {
		if !m.has(c) {
			return "NULL::text"
		}
		return m.col(c) + "::text"
	}
	timeSel := "NULL::timestamptz, NULL::text"
	if hasTime {
		timeSel = m.col(cols.Time) + "::timestamptz, " + m.col(cols.Time) + "::text"
	}
	sql := fmt.Sprintf("SELECT %s, %s, %s, %s, %s, %s, %s FROM %s AS o", sel(cols.ID), sel(cols.Type), sel(cols.Source), sel(cols.Subject),
		sel(cols.AggregateType), sel(cols.AggregateID), timeSel, m.quoted)
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += fmt.Sprintf(" ORDER BY %s LIMIT %d", order, limit+1)

	start := time.Now()
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return EventPage{}, searchError(err)
	}
	page := EventPage{Events: []EventSummary{}}
	var last cursor
	n := 0
	for rows.Next() {
		var id, typ, source, subject, aggType, aggID, timeText *string
		var ts *time.Time
		if err := rows.Scan(&id, &typ, &source, &subject, &aggType, &aggID, &ts, &timeText); err != nil {
			rows.Close()
			return EventPage{}, err
		}
		n++
		if n > limit {
			page.Next = last.encode()
			break
		}
		page.Events = append(page.Events, EventSummary{Table: m.name, ID: deref(id), Type: deref(typ), Source: deref(source), Subject: deref(subject),
			AggregateType: deref(aggType), AggregateID: deref(aggID), Time: ts})
		last = cursor{Table: m.name, Time: timeText, ID: deref(id)}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return EventPage{}, searchError(err)
	}
	page.ServerMillis = float64(time.Since(start).Microseconds()) / 1000
	return page, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// searchError makes a value the server cannot read a bad request.
func searchError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "22"):
			return fmt.Errorf("%w: %s", errBadRequest, pe.Message)
		case pe.Code == "57014":
			return fmt.Errorf("the search took longer than admin.query_timeout: narrow it (an aggregate id, a time range), or check that `outbox-cdc setup` created the search indexes: %s", pe.Message)
		}
	}
	return err
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	page, err := h.searchEvents(r.Context(), r)
	if err != nil {
		answerError(w, err)
		return
	}
	w.Header().Set("Server-Timing", fmt.Sprintf("db;dur=%.3f", page.ServerMillis))
	writeJSON(w, http.StatusOK, page)
}

func answerError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, errNotFound), errors.Is(err, dlq.ErrNotFound):
		status = http.StatusNotFound
	}
	writeError(w, status, err.Error())
}

var errNotFound = errors.New("not found")

// EventDetail is the body of GET /api/v1/events/{id}.
type EventDetail struct {
	Table string `json:"table"`
	// Row is the outbox row, column by column, as text (null for NULL).
	Row []Column `json:"row"`
	// Event is the CloudEvent in JSON (structured mode); absent when the
	// row cannot become one, and Invalid says why.
	Event   json.RawMessage `json:"event,omitempty"`
	Invalid string          `json:"invalid,omitempty"`
	// Sinks is the event as each configured sink sends it.
	Sinks []Binding `json:"sinks"`
	// DeadLetters are the dead letters stored for this event id.
	DeadLetters []LetterSummary `json:"dead_letters"`
	// Note says what the view cannot show.
	Note string `json:"note"`
}

// Column is one column of a row.
type Column struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

func (h *Handler) lookup(ctx context.Context, table, id string) ([]backfill.Row, error) {
	pool, err := h.searchPool(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	rows, err := backfill.Lookup(ctx, h.cfg, conn.Conn(), table, id)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: no outbox row has id %s (rows deleted after streaming, or pruned by outbox.retention, are in the brokers only)", errNotFound, id)
	}
	return rows, nil
}

func (h *Handler) event(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rows, err := h.lookup(r.Context(), r.URL.Query().Get("table"), id)
	if err != nil {
		answerError(w, err)
		return
	}
	row := rows[0]
	d := EventDetail{Table: row.Table, Sinks: []Binding{}, DeadLetters: []LetterSummary{},
		Note: "Read from the outbox table: the pglsn extension (the commit position) is known only to the stream, so it is not shown"}
	for i, c := range row.Columns {
		d.Row = append(d.Row, Column{Name: c, Value: row.Values[i]})
	}
	if row.Invalid != nil {
		d.Invalid = row.Invalid.Error()
	} else {
		d.Event = row.Event.AppendJSON(nil)
		for _, sc := range h.cfg.Sinks {
			d.Sinks = append(d.Sinks, render(sc, row.Event))
		}
	}
	if store, err := h.deadLetterStore(r.Context()); err == nil {
		if ls, err := store.List(r.Context(), dlq.Filter{Query: id, Limit: 20}); err == nil {
			for _, l := range ls {
				if l.EventID == id {
					d.DeadLetters = append(d.DeadLetters, summarize(l))
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, d)
}

// RepublishResult is the body of POST /api/v1/events/{id}/republish.
type RepublishResult struct {
	ID    string `json:"id"`
	Sink  string `json:"sink"`
	Acked int64  `json:"acknowledged"`
	// Duplicate tells that the broker reported it already held the event.
	Duplicate bool `json:"duplicate"`
}

func (h *Handler) republish(w http.ResponseWriter, r *http.Request) {
	id, name := r.PathValue("id"), r.URL.Query().Get("sink")
	if name == "" {
		h.fail(w, r, http.StatusBadRequest, errors.New("give the sink: ?sink=NAME"))
		return
	}
	known := false
	for _, sc := range h.cfg.Sinks {
		known = known || sc.Name == name
	}
	if !known {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("%w: %q", ErrUnknownSink, name))
		return
	}
	opts := backfill.Options{IDs: []string{id}, Sinks: []string{name}, Table: r.URL.Query().Get("table"), Logger: h.logger}
	sum, err := backfill.Run(r.Context(), h.cfg, opts)
	switch {
	case err != nil:
		status := http.StatusBadGateway
		if errors.Is(err, backfill.ErrUsage) || errors.Is(err, backfill.ErrRedisEntryID) {
			status = http.StatusConflict
		}
		h.fail(w, r, status, err)
		return
	case len(sum.NotFound) > 0 || sum.Read == 0:
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("%w: no outbox row has id %s", errNotFound, id))
		return
	case sum.Invalid > 0 || sum.Events == 0:
		h.fail(w, r, http.StatusConflict, fmt.Errorf("row %s cannot become a CloudEvent: nothing was sent", id))
		return
	}
	res := RepublishResult{ID: id, Sink: name}
	for _, k := range sum.Sinks {
		if k.Name == name {
			if k.Routed == 0 {
				h.fail(w, r, http.StatusConflict, fmt.Errorf("sink %s's route does not take event %s: nothing was sent", name, id))
				return
			}
			res.Acked, res.Duplicate = k.Acked, k.Duplicates > 0
		}
	}
	h.audit(r, principalOf(r), http.StatusOK, fmt.Sprintf("event %s republished to sink %s (acknowledged %d, duplicate %v)", id, name, res.Acked, res.Duplicate))
	writeJSON(w, http.StatusOK, res)
}
