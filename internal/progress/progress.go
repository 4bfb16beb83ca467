// Package progress keeps each sink's acknowledged position in a small table
// (written in batches, never per event), so that after a restart a sink is not
// sent again what it already acknowledged while another sink was the one
// holding the slot back.
package progress

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// Store reads and writes the progress table. Safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	table string // quoted
	slot  string
}

// Open returns a store over a pool of connections to the database pg names;
// table is schema-qualified.
func Open(ctx context.Context, pg pgc.Config, table, slot string) (*Store, error) {
	pool, err := pg.Pool(ctx, pgc.Options{})
	if err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	schema, name, _ := strings.Cut(table, ".")
	return &Store{pool: pool, table: pgx.Identifier{schema, name}.Sanitize(), slot: slot}, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// Load returns the stored position of every sink of the slot.
func (s *Store) Load(ctx context.Context) (map[string]uint64, error) {
	rows, err := s.pool.Query(ctx, "SELECT sink, lsn::text FROM "+s.table+" WHERE slot = $1", s.slot)
	if err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	out := map[string]uint64{}
	var sink, lsn string
	_, err = pgx.ForEachRow(rows, []any{&sink, &lsn}, func() error {
		l, err := pglogrepl.ParseLSN(lsn)
		out[sink] = uint64(l)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	return out, nil
}

// Save stores the positions in one statement; a position never goes back.
func (s *Store) Save(ctx context.Context, pos map[string]uint64) error {
	if len(pos) == 0 {
		return nil
	}
	var sinks, lsns []string
	for k, v := range pos {
		sinks = append(sinks, k)
		lsns = append(lsns, decoder.FormatLSN(v))
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (slot, sink, lsn)
		SELECT $1, s, l::pg_lsn FROM unnest($2::text[], $3::text[]) AS u(s, l)
		ON CONFLICT (slot, sink) DO UPDATE SET lsn = greatest(`+s.table+`.lsn, EXCLUDED.lsn), updated_at = now()`,
		s.slot, sinks, lsns)
	if err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	return nil
}
