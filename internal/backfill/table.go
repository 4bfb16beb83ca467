package backfill

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// source is one outbox table as the backfill reads it.
type source struct {
	name     string // schema.table, as configured
	quoted   string
	cols     []decoder.Column
	types    []string // format_type of each column
	timeCol  int      // index into cols, -1 without a time column
	idCol    int
	commitTS bool // select pg_xact_commit_timestamp(xmin)
	rows     *decoder.TableRows
}

// describe reads the table's columns as pgoutput would send them: in
// order, without dropped and generated columns.
func (r *runner) describe(ctx context.Context, t decoder.Table) (*source, error) {
	schema, name, _ := strings.Cut(t.Name, ".")
	src := &source{name: t.Name, quoted: pgx.Identifier{schema, name}.Sanitize(), timeCol: -1, idCol: -1}
	var exists bool
	if err := r.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", src.quoted).Scan(&exists); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	if !exists {
		return nil, fmt.Errorf("backfill: outbox table %s does not exist", t.Name)
	}
	rows, err := r.conn.Query(ctx, `SELECT attname, atttypid, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`, src.quoted)
	if err != nil {
		return nil, fmt.Errorf("backfill: columns of %s: %w", t.Name, err)
	}
	var cname, ctype string
	var oid uint32
	_, err = pgx.ForEachRow(rows, []any{&cname, &oid, &ctype}, func() error {
		switch cname {
		case t.Columns.Time:
			src.timeCol = len(src.cols)
		case t.Columns.ID:
			src.idCol = len(src.cols)
		}
		src.cols = append(src.cols, decoder.Column{Name: cname, OID: oid})
		src.types = append(src.types, ctype)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backfill: columns of %s: %w", t.Name, err)
	}
	if src.idCol < 0 {
		return nil, fmt.Errorf("backfill: table %s has no id column %q", t.Name, t.Columns.ID)
	}
	var track string
	if err := r.conn.QueryRow(ctx, "SHOW track_commit_timestamp").Scan(&track); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	src.commitTS = track == "on"
	if src.rows, err = r.dec.TableRows(t.Name, src.cols); err != nil {
		return nil, err
	}
	return src, nil
}

// col is column i, qualified by the table's alias "o". Every reference is
// qualified: in ORDER BY a bare name would mean the output column of that
// name, the column's text.
func (s *source) col(i int) string { return "o." + pgx.Identifier{s.cols[i].Name}.Sanitize() }

// order is the paging key: the time column, then the order of the rows of
// one transaction (command id, then partition and place in the table).
func (s *source) order() string {
	key := "o.cmin::text::bigint, o.tableoid, o.ctid"
	if s.timeCol >= 0 {
		key = s.col(s.timeCol) + ", " + key
	}
	return key
}

// query builds the SELECT of one page of at most limit rows (0: no limit).
// Parameters: the selection's, then, for a time selection after the first
// page, the key of the last row.
func (s *source) query(sel selection, after bool, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i := range s.cols {
		fmt.Fprintf(&b, "%s::text, ", s.col(i))
	}
	b.WriteString("o.cmin::text, o.tableoid::text, o.ctid::text")
	if s.commitTS {
		b.WriteString(", pg_xact_commit_timestamp(o.xmin)::text")
	}
	b.WriteString(" FROM " + s.quoted + " AS o WHERE true")
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if len(sel.ids) > 0 {
		fmt.Fprintf(&b, " AND %s = ANY((%s::text[])::%s[])", s.col(s.idCol), arg(sel.ids), s.types[s.idCol])
	} else {
		t := s.col(s.timeCol)
		if sel.from != "" {
			fmt.Fprintf(&b, " AND %s >= (%s::text)::timestamptz", t, arg(sel.from))
		}
		if sel.to != "" {
			fmt.Fprintf(&b, " AND %s < (%s::text)::timestamptz", t, arg(sel.to))
		}
		if after {
			// The first condition repeats the key's time on its own, so an
			// index on the time column starts the scan at the last row
			// instead of at the start of the selection.
			last := arg(nil)
			fmt.Fprintf(&b, " AND %s >= (%s::text)::%s AND (%s) > ((%s::text)::%s, (%s::text)::bigint, (%s::text)::oid, (%s::text)::tid)",
				t, last, s.types[s.timeCol], s.order(), last, s.types[s.timeCol], arg(nil), arg(nil), arg(nil))
		}
	}
	fmt.Fprintf(&b, " ORDER BY %s", s.order())
	if limit > 0 {
		fmt.Fprintf(&b, " LIMIT %d", limit)
	}
	return b.String(), args
}

// table backfills one table and returns the selected ids it does not hold.
func (r *runner) table(ctx context.Context, t decoder.Table, sel selection) ([]string, error) {
	src, err := r.describe(ctx, t)
	if err != nil {
		return nil, err
	}
	if len(sel.ids) == 0 {
		if src.timeCol < 0 {
			return nil, fmt.Errorf("backfill: table %s has no time column %q to select by time: use --ids", t.Name, t.Columns.Time)
		}
		r.describeSelection(ctx, src, sel)
		err := r.pages(ctx, src, sel)
		if err == nil {
			r.progress(src.name, true)
		}
		return nil, err
	}
	fmt.Fprintf(r.opts.Out, "backfill: %s: rows with %s in the %d ids given\n", src.name, t.Columns.ID, len(sel.ids))
	var missing []string
	for ids := sel.ids; len(ids) > 0; {
		n := min(len(ids), r.opts.BatchSize)
		chunk := selection{ids: ids[:n]}
		ids = ids[n:]
		if err := r.pages(ctx, src, chunk); err != nil {
			return nil, err
		}
		m, err := r.missing(ctx, src, chunk.ids)
		if err != nil {
			return nil, err
		}
		missing = append(missing, m...)
		r.progress(src.name, len(ids) == 0)
	}
	return missing, nil
}

// describeSelection writes what a time selection reads, and a hint when no
// index serves it.
func (r *runner) describeSelection(ctx context.Context, src *source, sel selection) {
	what := "every row"
	switch {
	case sel.from != "" && sel.to != "":
		what = fmt.Sprintf("rows with %s >= %s and < %s", src.cols[src.timeCol].Name, sel.from, sel.to)
	case sel.from != "":
		what = fmt.Sprintf("rows with %s >= %s", src.cols[src.timeCol].Name, sel.from)
	case sel.to != "":
		what = fmt.Sprintf("rows with %s < %s", src.cols[src.timeCol].Name, sel.to)
	}
	fmt.Fprintf(r.opts.Out, "backfill: %s: %s, in pages of %d\n", src.name, what, r.opts.BatchSize)
	var indexed bool
	err := r.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indrelid = $1::regclass AND a.attname = $2)`, src.quoted, src.cols[src.timeCol].Name).Scan(&indexed)
	if err == nil && !indexed {
		fmt.Fprintf(r.opts.Out, "backfill: %s has no index on %s: each page scans the table; for a large table first run CREATE INDEX CONCURRENTLY ON %s (%s)\n",
			src.name, src.cols[src.timeCol].Name, src.quoted, pgx.Identifier{src.cols[src.timeCol].Name}.Sanitize())
	}
}

// pages reads the selection page by page, maps, publishes and waits for the
// acknowledgements of each page before reading the next.
func (r *runner) pages(ctx context.Context, src *source, sel selection) error {
	var last []string // key of the last row: time, cmin, tableoid, ctid
	for {
		limit := r.opts.BatchSize
		if len(sel.ids) > 0 {
			limit = 0 // a chunk of ids is one page
		}
		q, args := src.query(sel, last != nil, limit)
		if last != nil {
			copy(args[len(args)-4:], []any{last[0], last[1], last[2], last[3]})
		}
		rows, err := r.conn.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("backfill: read %s: %w", src.name, err)
		}
		n, key, err := r.page(ctx, src, rows)
		if err != nil {
			return err
		}
		if perr := r.publish(ctx, src.name); perr != nil {
			return perr
		}
		if n < r.opts.BatchSize || len(sel.ids) > 0 {
			return nil
		}
		r.progress(src.name, false)
		last = key
	}
}

// page maps the rows of one page. It returns how many rows it read and the
// paging key of the last. A row that cannot become an event goes to
// invalid; when that stops the backfill, what was mapped before it is
// published first.
func (r *runner) page(ctx context.Context, src *source, rows pgx.Rows) (int, []string, error) {
	defer rows.Close()
	n := len(src.cols)
	var key []string
	read := 0
	for rows.Next() {
		raw := rows.RawValues()
		read++
		r.sum.Read++
		var commit time.Time
		if src.commitTS && raw[n+3] != nil {
			commit, _ = time.Parse("2006-01-02 15:04:05.999999Z07", string(raw[n+3]))
		}
		if src.timeCol >= 0 && raw[src.timeCol] != nil {
			key = []string{string(raw[src.timeCol]), string(raw[n]), string(raw[n+1]), string(raw[n+2])}
		}
		e, err := src.rows.Event(raw[:n], commit)
		var derr *decoder.Error
		if errors.As(err, &derr) {
			if ierr := r.invalid(ctx, derr); ierr != nil {
				rows.Close()
				if perr := r.publish(ctx, src.name); perr != nil {
					return read, key, errors.Join(ierr, perr)
				}
				return read, key, ierr
			}
			continue
		}
		if err != nil {
			return read, key, err
		}
		r.event(e)
	}
	if err := rows.Err(); err != nil {
		return read, key, fmt.Errorf("backfill: read %s: %w", src.name, err)
	}
	return read, key, nil
}

// missing returns the ids of the chunk the table does not hold.
func (r *runner) missing(ctx context.Context, src *source, ids []string) ([]string, error) {
	q := fmt.Sprintf("SELECT x FROM unnest($1::text[]) AS u(x) WHERE NOT EXISTS (SELECT 1 FROM %s AS o WHERE %s = x::%s)",
		src.quoted, src.col(src.idCol), src.types[src.idCol])
	rows, err := r.conn.Query(ctx, q, ids)
	if err != nil {
		return nil, fmt.Errorf("backfill: %s: %w", src.name, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("backfill: %s: %w", src.name, err)
	}
	return out, nil
}
