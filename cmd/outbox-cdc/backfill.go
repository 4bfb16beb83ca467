package main

import (
	"errors"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/outbox-cdc/outbox-cdc/internal/backfill"
)

const backfillLong = `Re-publishes outbox rows read from the outbox tables themselves through the
configured sinks, with the event ids and attributes a streamed row gets, so
brokers drop what they already hold. For rows the replication slot never
carried or lost; see docs/backfill.md.

Choose the rows with --since TIME, --from TIME --to TIME, or --ids ID,...`

func backfillCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backfill (--since TIME | --from TIME --to TIME | --ids ID,...)",
		Short: "Re-publish outbox rows read from the table (--since, --from/--to or --ids)",
		Long:  backfillLong,
		Args:  noArgs,
	}
	cfgPath := configFlag(cmd)
	var opts backfill.Options
	var ids, sinks []string
	fs := cmd.Flags()
	fs.StringVar(&opts.Since, "since", "", "every row whose time column is at or after TIME")
	fs.StringVar(&opts.From, "from", "", "rows whose time column is at or after TIME (with --to: before it)")
	fs.StringVar(&opts.To, "to", "", "rows whose time column is before TIME")
	fs.StringSliceVar(&ids, "ids", nil, "rows with these ids (comma-separated; may be repeated)")
	fs.StringVar(&opts.Table, "table", "", "only this configured outbox table (default: all)")
	fs.StringSliceVar(&sinks, "sink", nil, "only these configured sinks (comma-separated; may be repeated; default: all)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "print what would be published; publish nothing")
	fs.IntVar(&opts.BatchSize, "batch", backfill.DefaultBatchSize, "rows per page")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts.IDs, opts.Sinks = trimmed(ids), trimmed(sinks)
		if err := opts.Validate(); err != nil {
			return usageError{err}
		}
		cfg, _, err := loadConfig(*cfgPath, stderr)
		if err != nil {
			return err
		}
		opts.Out = stdout
		opts.Logger = newLogger(cfg.Log, stderr)
		sum, err := backfill.Run(cmd.Context(), cfg, opts)
		sum.Report(stdout)
		if err != nil && errors.Is(err, backfill.ErrUsage) {
			return usageError{err}
		}
		return err
	}
	return cmd
}

// trimmed drops empty and surrounding white space from a list flag's values.
func trimmed(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
