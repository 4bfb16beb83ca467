package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	pgxconn "github.com/jackc/pgx/v5/pgconn"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

func setup(ctx context.Context, cfg *config.Config, tables bool, out io.Writer) error {
	conn, err := wiring.Postgres(cfg).Connect(ctx, pgconn.Options{})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	say := func(s string) { fmt.Fprintln(out, s) }
	if err := schema.Setup(ctx, conn, wiring.Names(cfg), tables, say); err != nil {
		return err
	}
	if err := schema.Grant(ctx, conn, wiring.Names(cfg), access(cfg), say); err != nil {
		return err
	}
	if cfg.Admin.Enabled {
		return schema.CreateSearchIndexes(ctx, conn, searchTables(cfg), say)
	}
	return nil
}

// searchTables are the outbox tables as the admin console searches them.
func searchTables(cfg *config.Config) []schema.SearchTable {
	var out []schema.SearchTable
	for _, t := range wiring.Decoder(cfg).WithDefaults().Tables {
		c := t.Columns
		out = append(out, schema.SearchTable{Table: t.Name, ID: c.ID, Type: c.Type, AggregateID: c.AggregateID, Time: c.Time})
	}
	return out
}

// printSQL writes what setup would do, as SQL for a DBA, without connecting.
// With no postgres.roles.stream the streaming role is postgres.url's user.
func printSQL(cfg *config.Config, tables bool, out io.Writer) error {
	a := access(cfg)
	if a.Stream == "" {
		pc, err := pgxconn.ParseConfig(cfg.Postgres.URL)
		if err != nil {
			return fmt.Errorf("config: postgres.url: %w", pgconn.RedactError(err))
		}
		a.Stream = pc.User
	}
	if err := schema.PrintSQL(out, wiring.Names(cfg), a, tables); err != nil {
		return err
	}
	if cfg.Admin.Enabled {
		fmt.Fprintln(out, "\n-- The admin console's searches (admin.enabled). CONCURRENTLY does not block")
		fmt.Fprintln(out, "-- writers; run each statement on its own, outside a transaction block.")
		for _, t := range searchTables(cfg) {
			for _, ix := range schema.SearchIndexes(t) {
				fmt.Fprintln(out, schema.SearchIndexSQL(t, ix, true)+";")
			}
		}
	}
	return nil
}

// access is who gets which privileges, from the configuration.
func access(cfg *config.Config) schema.Access {
	ids := map[string]string{}
	for _, t := range wiring.Decoder(cfg).WithDefaults().Tables {
		ids[t.Name] = t.Columns.ID
	}
	return schema.Access{
		Stream:    cfg.Postgres.Roles.Stream,
		Writers:   cfg.Postgres.Roles.Writers,
		Messages:  cfg.Outbox.Messages.Enabled,
		Retention: cfg.Outbox.Retention.Age > 0,
		IDColumns: ids,
	}
}

func teardown(ctx context.Context, cfg *config.Config, out io.Writer) error {
	conn, err := wiring.Postgres(cfg).Connect(ctx, pgconn.Options{})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return schema.Teardown(ctx, conn, wiring.Names(cfg), func(s string) { fmt.Fprintln(out, s) })
}

func status(ctx context.Context, cfg *config.Config, token string, asJSON bool, out io.Writer) error {
	conn, err := wiring.Postgres(cfg).Connect(ctx, pgconn.Options{})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	st, err := schema.Status(ctx, conn, cfg.Postgres.Slot)
	if err != nil {
		return err
	}
	live, liveErr := liveStatus(ctx, cfg, token)
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		v := map[string]any{"slot": st}
		if live != nil {
			v["instance"] = live
		} else if liveErr != nil {
			v["instance_error"] = liveErr.Error()
		}
		return enc.Encode(v)
	}
	if !st.Exists {
		fmt.Fprintf(out, "slot %s does not exist (run `outbox-cdc setup`); server WAL at %s\n", st.Slot, st.CurrentLSN)
		return nil
	}
	active := "inactive (no outbox-cdc is streaming it)"
	switch {
	case st.Invalidated:
		active = "INVALIDATED by the server: " + st.InvalidationCause
	case st.Holder != nil:
		active = "active, held by " + st.Holder.String()
	case st.Active:
		active = "active"
		if st.ActivePID != nil {
			active = fmt.Sprintf("active (walsender pid %d)", *st.ActivePID)
		}
	}
	fmt.Fprintf(out, "slot:            %s, %s\n", st.Slot, active)
	fmt.Fprintf(out, "confirmed flush: %s\n", st.ConfirmedFlushLSN)
	fmt.Fprintf(out, "server WAL:      %s\n", st.CurrentLSN)
	fmt.Fprintf(out, "lag:             %s\n", humanBytes(st.LagBytes))
	fmt.Fprintf(out, "retained WAL:    %s (from restart_lsn %s)\n", humanBytes(st.RetainedBytes), st.RestartLSN)
	if st.WALStatus != "" {
		fmt.Fprintf(out, "wal_status:      %s\n", st.WALStatus)
	}
	if st.SafeWALSize != nil {
		fmt.Fprintf(out, "safe_wal_size:   %s\n", humanBytes(*st.SafeWALSize))
	}
	if st.Invalidated {
		fmt.Fprintf(out, "recovery:        %s\n", st.Invalidation)
	}
	switch {
	case live != nil:
		ready := "ready"
		if !live.Ready.OK {
			ready = "NOT READY"
			for _, c := range live.Ready.Checks {
				if !c.OK {
					ready += "; " + c.Name + ": " + c.Reason
				}
			}
		}
		fmt.Fprintf(out, "instance:        %s since %s, %s\n", live.State, live.Since.UTC().Format(time.RFC3339), ready)
		fmt.Fprintf(out, "in flight:       %d events, %s, oldest %.1fs\n", live.InFlightEvents, humanBytes(live.InFlightBytes), live.LagSeconds)
		fmt.Fprintf(out, "confirmed by it: %s\n", live.Confirmed)
	case liveErr != nil:
		fmt.Fprintf(out, "instance:        %v\n", liveErr)
	}
	return nil
}

// humanBytes writes a byte count with its binary unit beside it:
// "1536 bytes (1.5 KiB)".
func humanBytes(n int64) string {
	s := fmt.Sprintf("%d bytes", n)
	v, units := float64(n), []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	if v < 0 {
		v = -v
	}
	if v < 1024 {
		return s
	}
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	sign := ""
	if n < 0 {
		sign = "-"
	}
	return fmt.Sprintf("%s (%s%.1f %s)", s, sign, v, units[i])
}

// liveStatus asks a running instance at http.addr for its state, with the
// admin token when the admin API authenticates /status. It returns nil,
// nil when the HTTP server is disabled.
func liveStatus(ctx context.Context, cfg *config.Config, token string) (*observe.StatusReport, error) {
	if cfg.HTTP.Addr == "-" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c := newAPIClient(cfg.HTTP.Addr, resolveToken(token, cfg, false))
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/status", nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no running instance answers at %s", cfg.HTTP.Addr)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("the instance at %s asks for an admin token: give --token or $%s", cfg.HTTP.Addr, TokenEnv)
	}
	var st observe.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("instance at %s: %w", cfg.HTTP.Addr, err)
	}
	return &st, nil
}
