package backfill

import (
	"errors"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"since", Options{Since: "2026-01-01"}, true},
		{"range", Options{From: "2026-01-01", To: "2026-01-02"}, true},
		{"from only", Options{From: "2026-01-01"}, true},
		{"to only", Options{To: "2026-01-01"}, true},
		{"ids", Options{IDs: []string{"a", "b"}}, true},
		{"nothing", Options{}, false},
		{"since and from", Options{Since: "2026-01-01", From: "2026-01-01"}, false},
		{"time and ids", Options{Since: "2026-01-01", IDs: []string{"a"}}, false},
		{"empty id", Options{IDs: []string{""}}, false},
		{"negative batch", Options{Since: "x", BatchSize: -1}, false},
	} {
		err := tc.o.Validate()
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrUsage)) {
			t.Errorf("%s: Validate() = %v, want ok %v (errors match ErrUsage)", tc.name, err, tc.ok)
		}
	}
}

// The paging key is the time column, then the insert order within a
// transaction, and a later page starts after the last row's key.
func TestPageQuery(t *testing.T) {
	s := &source{quoted: `"public"."outbox"`, timeCol: 2, idCol: 0,
		cols:  []decoder.Column{{Name: "id"}, {Name: "type"}, {Name: "created_at"}},
		types: []string{"uuid", "text", "timestamp with time zone"}}
	q, args := s.query(selection{from: "2026-01-01 00:00:00+00", to: "2026-01-02 00:00:00+00"}, true, 500)
	for _, w := range []string{
		`o."id"::text, o."type"::text, o."created_at"::text, o.cmin::text, o.tableoid::text, o.ctid::text FROM "public"."outbox" AS o`,
		`o."created_at" >= ($1::text)::timestamptz AND o."created_at" < ($2::text)::timestamptz`,
		`o."created_at" >= ($3::text)::timestamp with time zone AND (o."created_at", o.cmin::text::bigint, o.tableoid, o.ctid) > (($3::text)::timestamp with time zone, ($4::text)::bigint, ($5::text)::oid, ($6::text)::tid)`,
		// Qualified: a bare name in ORDER BY would sort by the output
		// column of that name, the text.
		`ORDER BY o."created_at", o.cmin::text::bigint, o.tableoid, o.ctid LIMIT 500`,
	} {
		if !strings.Contains(q, w) {
			t.Errorf("query lacks %s:\n%s", w, q)
		}
	}
	if len(args) != 6 {
		t.Errorf("%d args, want 6", len(args))
	}
	s.commitTS = true
	q, args = s.query(selection{ids: []string{"a"}}, false, 0)
	if !strings.Contains(q, `o."id" = ANY(($1::text[])::uuid[])`) || !strings.Contains(q, "pg_xact_commit_timestamp(o.xmin)::text") ||
		strings.Contains(q, "LIMIT") || len(args) != 1 {
		t.Errorf("id query:\n%s %v", q, args)
	}
}
