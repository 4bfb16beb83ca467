package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/backfill"
)

const backfillUsage = `usage: outbox-cdc backfill --config FILE (--since TIME | --from TIME --to TIME | --ids ID,...)
                          [--table NAME] [--sink NAME,...] [--dry-run] [--batch N]

Re-publishes outbox rows read from the outbox tables themselves through the
configured sinks, with the event ids and attributes a streamed row gets, so
brokers drop what they already hold. For rows the replication slot never
carried or lost; see docs/backfill.md.

`

// list is a flag that takes comma-separated values and may be repeated.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// backfillCommand runs `outbox-cdc backfill ...`. args are what follows
// "backfill".
func backfillCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backfillUsage); fs.PrintDefaults() }
	cfgPath := fs.String("config", os.Getenv("OUTBOX_CDC_CONFIG"), "YAML config file")
	var opts backfill.Options
	var ids, sinks list
	fs.StringVar(&opts.Since, "since", "", "every row whose time column is at or after TIME")
	fs.StringVar(&opts.From, "from", "", "rows whose time column is at or after TIME (with --to: before it)")
	fs.StringVar(&opts.To, "to", "", "rows whose time column is before TIME")
	fs.Var(&ids, "ids", "rows with these ids (comma-separated; may be repeated)")
	fs.StringVar(&opts.Table, "table", "", "only this configured outbox table (default: all)")
	fs.Var(&sinks, "sink", "only these configured sinks (comma-separated; may be repeated; default: all)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "print what would be published; publish nothing")
	fs.IntVar(&opts.BatchSize, "batch", backfill.DefaultBatchSize, "rows per page")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "outbox-cdc backfill: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	opts.IDs, opts.Sinks = ids, sinks
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "outbox-cdc: %v\n\n", err)
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Environ(), nil)
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc:", err)
		return 1
	}
	opts.Out = stdout
	opts.Logger = newLogger(cfg.Log, stderr)
	sum, err := backfill.Run(ctx, cfg, opts)
	sum.Report(stdout)
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc:", err)
		if errors.Is(err, backfill.ErrUsage) {
			return 2
		}
		return 1
	}
	return 0
}
