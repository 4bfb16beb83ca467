package schema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// UseUTF8 checks that outbox-cdc can read the database's server_encoding
// (decoder.SupportedEncodings) and switches conn to client_encoding UTF8,
// so that the names and text it sends and reads are UTF-8 whatever the
// database's encoding. It returns the server encoding. `setup`, `run` and
// the other commands call it on every SQL connection they open.
func UseUTF8(ctx context.Context, conn *pgx.Conn) (string, error) {
	enc := conn.PgConn().ParameterStatus("server_encoding")
	if enc == "" {
		if err := conn.QueryRow(ctx, "SHOW server_encoding").Scan(&enc); err != nil {
			return "", fmt.Errorf("postgres: %w", explain(err))
		}
	}
	if err := decoder.CheckEncoding(enc); err != nil {
		return enc, fmt.Errorf("postgres: database %q: %w", conn.Config().Database, err)
	}
	if conn.PgConn().ParameterStatus("client_encoding") != "UTF8" {
		if _, err := conn.Exec(ctx, "SET client_encoding TO 'UTF8'"); err != nil {
			return enc, fmt.Errorf("postgres: set client_encoding UTF8: %w", explain(err))
		}
	}
	return enc, nil
}
