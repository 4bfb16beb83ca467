package main

import (
	"context"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/sink"
	"github.com/outbox-cdc/outbox-cdc/sink/file"
)

func fileSink(sc config.Sink, opts sink.Options) (sink.Sink, error) {
	return file.Open(sc.File(), opts)
}

func openBroker(ctx context.Context, sc config.Sink, opts sink.Options) (sink.Sink, error) {
	return nil, errUnknownSink(sc)
}
