package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/schema"
	"github.com/outbox-cdc/outbox-cdc/streamer"
)

func setup(ctx context.Context, cfg *config.Config, tables bool, out io.Writer) error {
	conn, err := streamer.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return schema.Setup(ctx, conn, streamer.Names(cfg), tables, func(s string) { fmt.Fprintln(out, s) })
}

func teardown(ctx context.Context, cfg *config.Config, out io.Writer) error {
	conn, err := streamer.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return schema.Teardown(ctx, conn, streamer.Names(cfg), func(s string) { fmt.Fprintln(out, s) })
}

func status(ctx context.Context, cfg *config.Config, asJSON bool, out io.Writer) error {
	conn, err := streamer.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	st, err := schema.Status(ctx, conn, cfg.Postgres.Slot)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	if !st.Exists {
		fmt.Fprintf(out, "slot %s does not exist (run `outbox-cdc setup`); server WAL at %s\n", st.Slot, st.CurrentLSN)
		return nil
	}
	active := "inactive (no outbox-cdc is streaming it)"
	if st.Active {
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
	return nil
}
