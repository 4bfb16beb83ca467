package schema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SearchTable is an outbox table as the admin console searches it: the
// names of its id, type, aggregate id and time columns ("" or "-" when the
// table has none).
type SearchTable struct {
	Table                       string // schema.table
	ID, Type, AggregateID, Time string
}

func present(c string) bool { return c != "" && c != "-" }

// SearchIndex is one index of the console's searches.
type SearchIndex struct {
	Name    string   // unqualified; in the table's schema
	Columns []string // in order
}

// SearchIndexes returns the indexes the console's searches use on t, newest
// first by the time column then the id (keyset paging): one led by the
// aggregate id, one led by the type, and one on the time column alone.
// Each costs every insert into the outbox one more B-tree entry; with
// retention pruning the table they stay small.
func SearchIndexes(t SearchTable) []SearchIndex {
	var tail []string
	if present(t.Time) {
		tail = append(tail, t.Time)
	}
	if present(t.ID) {
		tail = append(tail, t.ID)
	}
	var out []SearchIndex
	for _, lead := range []string{t.AggregateID, t.Type} {
		if present(lead) {
			out = append(out, SearchIndex{Columns: append([]string{lead}, tail...)})
		}
	}
	if present(t.Time) {
		out = append(out, SearchIndex{Columns: tail})
	}
	_, rel, _ := strings.Cut(t.Table, ".")
	for i := range out {
		out[i].Name = indexName(rel, out[i].Columns)
	}
	return out
}

// indexName is <table>_<first column>_search, within PostgreSQL's 63 bytes.
func indexName(rel string, cols []string) string {
	name := rel + "_" + cols[0] + "_search"
	if len(name) <= 63 {
		return name
	}
	d := sha256.Sum256([]byte(name))
	return name[:50] + "_" + hex.EncodeToString(d[:6])
}

// SearchIndexSQL returns the CREATE INDEX statement of one search index.
// concurrently builds it without blocking writes (not for a partitioned
// table, nor inside a transaction block).
func SearchIndexSQL(t SearchTable, ix SearchIndex, concurrently bool) string {
	cols := make([]string, len(ix.Columns))
	for i, c := range ix.Columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	conc := ""
	if concurrently {
		conc = "CONCURRENTLY "
	}
	return fmt.Sprintf("CREATE INDEX %sIF NOT EXISTS %s ON %s (%s)", conc, pgx.Identifier{ix.Name}.Sanitize(), quoteQualified(t.Table), strings.Join(cols, ", "))
}

// CreateSearchIndexes creates the indexes of the console's searches on each
// table that lacks them: CONCURRENTLY on a plain table, so that writers are
// not blocked while a large outbox is indexed; an index a failed concurrent
// build left invalid is dropped and built again. It reports through say.
func CreateSearchIndexes(ctx context.Context, conn *pgx.Conn, tables []SearchTable, say func(string)) error {
	for _, t := range tables {
		var partitioned bool
		if err := conn.QueryRow(ctx, "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass($1)", quoteQualified(t.Table)).Scan(&partitioned); err != nil {
			return fmt.Errorf("setup: search indexes of %s: %w", t.Table, explain(err))
		}
		schema, _, _ := strings.Cut(t.Table, ".")
		for _, ix := range SearchIndexes(t) {
			var valid *bool
			err := conn.QueryRow(ctx, `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
				JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, schema, ix.Name).Scan(&valid)
			if err != nil && err != pgx.ErrNoRows {
				return fmt.Errorf("setup: search index %s: %w", ix.Name, explain(err))
			}
			if valid != nil && *valid {
				continue
			}
			if valid != nil {
				if _, err := conn.Exec(ctx, "DROP INDEX "+pgx.Identifier{schema, ix.Name}.Sanitize()); err != nil {
					return fmt.Errorf("setup: drop invalid search index %s: %w", ix.Name, explain(err))
				}
			}
			if _, err := conn.Exec(ctx, SearchIndexSQL(t, ix, !partitioned)); err != nil {
				return fmt.Errorf("setup: create search index %s on %s: %w", ix.Name, t.Table, explain(err))
			}
			say(fmt.Sprintf("search index %s on %s (%s) is ready", ix.Name, t.Table, strings.Join(ix.Columns, ", ")))
		}
	}
	return nil
}
