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
	return schema.Grant(ctx, conn, wiring.Names(cfg), access(cfg), say)
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
	return schema.PrintSQL(out, wiring.Names(cfg), a, tables)
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

func status(ctx context.Context, cfg *config.Config, asJSON bool, out io.Writer) error {
	conn, err := wiring.Postgres(cfg).Connect(ctx, pgconn.Options{})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	st, err := schema.Status(ctx, conn, cfg.Postgres.Slot)
	if err != nil {
		return err
	}
	live, liveErr := liveStatus(ctx, cfg)
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
	fmt.Fprintf(out, "lag:             %d bytes\n", st.LagBytes)
	fmt.Fprintf(out, "retained WAL:    %d bytes (from restart_lsn %s)\n", st.RetainedBytes, st.RestartLSN)
	if st.WALStatus != "" {
		fmt.Fprintf(out, "wal_status:      %s\n", st.WALStatus)
	}
	if st.SafeWALSize != nil {
		fmt.Fprintf(out, "safe_wal_size:   %d bytes\n", *st.SafeWALSize)
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
		fmt.Fprintf(out, "in flight:       %d events, %d bytes, oldest %.1fs\n", live.InFlightEvents, live.InFlightBytes, live.LagSeconds)
		fmt.Fprintf(out, "confirmed by it: %s\n", live.Confirmed)
	case liveErr != nil:
		fmt.Fprintf(out, "instance:        %v\n", liveErr)
	}
	return nil
}

// liveStatus asks a running instance at http.addr for its state. It returns
// nil, nil when the HTTP server is disabled.
func liveStatus(ctx context.Context, cfg *config.Config) (*observe.StatusReport, error) {
	if cfg.HTTP.Addr == "-" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+cfg.HTTP.Addr+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no running instance answers at %s", cfg.HTTP.Addr)
	}
	defer resp.Body.Close()
	var st observe.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("instance at %s: %w", cfg.HTTP.Addr, err)
	}
	return &st, nil
}
