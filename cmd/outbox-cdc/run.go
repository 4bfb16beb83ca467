package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/outbox-cdc/outbox-cdc/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/decoder"
	"github.com/outbox-cdc/outbox-cdc/pipeline"
	"github.com/outbox-cdc/outbox-cdc/replication"
	"github.com/outbox-cdc/outbox-cdc/schema"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// run checks the server, opens the sinks and streams until ctx is done.
func run(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	conn, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	err = schema.Check(ctx, conn, names(cfg))
	conn.Close(context.Background())
	if err != nil {
		return err
	}

	obs := sink.NopObserver{}
	var targets []sink.Target
	closeAll := func() {
		for _, t := range targets {
			t.Sink.Close()
		}
	}
	for _, sc := range cfg.Sinks {
		s, err := openSink(ctx, sc, sink.Options{Name: sc.Name, Logger: logger, Observer: obs})
		if err != nil {
			closeAll()
			return err
		}
		targets = append(targets, sink.Target{Name: sc.Name, Sink: s, Route: sc.Route, MaxBatch: sc.MaxBatch})
	}
	fan, err := sink.NewFanout(targets, logger, sink.Hooks{})
	if err != nil {
		closeAll()
		return err
	}
	defer fan.Close()

	dec, err := decoder.New(cfg.Decoder(), logger)
	if err != nil {
		return err
	}
	cp := checkpoint.New(cfg.Checkpoint(), 0)
	pl := pipeline.New(dec, cp, fan, pipeline.Hooks{})
	stream, err := replication.New(cfg.Replication(), pl, logger, replication.Hooks{})
	if err != nil {
		return err
	}

	// The sinks run on their own context: at shutdown they must keep
	// delivering while the stream drains.
	sinkCtx, cancelSinks := context.WithCancel(context.Background())
	defer cancelSinks()
	streamCtx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()
	fanDone := make(chan error, 1)
	go func() {
		err := fan.Run(sinkCtx)
		if err != nil {
			cancelStream() // a sink failed for good: stop reading, drain, confirm
		}
		fanDone <- err
	}()

	logger.Info("outbox-cdc starting", "version", versionString(), "slot", cfg.Postgres.Slot,
		"publication", cfg.Postgres.Publication, "sinks", len(targets))
	streamErr := stream.Run(streamCtx)

	fan.Stop()
	var fanErr error
	select {
	case fanErr = <-fanDone:
	case <-time.After(10 * time.Second):
		cancelSinks()
		fanErr = <-fanDone
	}
	if err := errors.Join(streamErr, fanErr); err != nil {
		return err
	}
	logger.Info("outbox-cdc stopped", "confirmed", decoder.FormatLSN(stream.Reported()))
	return nil
}

func openSink(ctx context.Context, sc config.Sink, opts sink.Options) (sink.Sink, error) {
	switch sc.Type {
	case "file", "stdout":
		return fileSink(sc, opts)
	}
	return openBroker(ctx, sc, opts)
}

func errUnknownSink(sc config.Sink) error {
	return fmt.Errorf("sink %s: unknown type %q", sc.Name, sc.Type)
}
