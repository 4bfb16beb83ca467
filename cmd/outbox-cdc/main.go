// Command outbox-cdc streams outbox rows from PostgreSQL logical replication
// to brokers as CloudEvents.
//
//	outbox-cdc run      --config FILE   stream until SIGINT/SIGTERM
//	outbox-cdc setup    --config FILE   create table, publication and slot, grant privileges
//	                   [--print-sql]     print that SQL for a DBA instead (no connection)
//	outbox-cdc status   --config FILE [--json]
//	outbox-cdc teardown --config FILE --yes
//	outbox-cdc backfill --config FILE (--since T | --from T --to T | --ids ID,...)
//	outbox-cdc healthcheck [--addr HOST:PORT]
//	outbox-cdc inbox    list|replay|discard|migrate --url URL   (the handler framework's inbox)
//	outbox-cdc version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `usage: outbox-cdc <command> [flags]

commands:
  run       stream outbox events to the configured sinks until SIGINT/SIGTERM
  setup     create the outbox table, publication and replication slot and grant
            the configured roles their privileges (idempotent); --print-sql
            prints that SQL for a DBA instead, without connecting
  status    show the replication slot: confirmed position, lag, active or not
  teardown  drop the replication slot and publication (needs --yes)
  dlq       list, show, replay or discard dead letters (outbox-cdc dlq for help)
  backfill  re-publish outbox rows read from the table (--since, --from/--to or --ids)
  healthcheck  exit 0 when a running outbox-cdc's /healthz answers 200 (--addr)
  inbox     list, replay or discard events a Go consumer parked (outbox-cdc inbox for help)
  version   print the version, commit and build date

every command takes --config FILE (default $OUTBOX_CDC_CONFIG); every config
key can be overridden by an environment variable, e.g. OUTBOX_CDC_POSTGRES_URL.
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	if cmd == "healthcheck" {
		return healthcheckCommand(args, stdout, stderr)
	}
	if cmd == "dlq" || cmd == "backfill" || cmd == "inbox" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if cmd == "backfill" {
			return backfillCommand(ctx, args, stdout, stderr)
		}
		if cmd == "inbox" {
			return inboxCommand(ctx, args, stdout, stderr)
		}
		return dlqCommand(ctx, args, stdout, stderr)
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("OUTBOX_CDC_CONFIG"), "YAML config file")
	asJSON := fs.Bool("json", false, "status: print JSON")
	yes := fs.Bool("yes", false, "teardown: really drop the slot and publication")
	skipTables := fs.Bool("skip-tables", false, "setup: do not create outbox tables")
	printOnly := fs.Bool("print-sql", false, "setup: print the SQL (DDL and GRANTs) for a DBA instead of running it; no connection")
	switch cmd {
	case "version", "--version", "-version":
		printVersion(stdout)
		return 0
	case "help", "--help", "-h", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	case "run", "setup", "status", "teardown":
	default:
		fmt.Fprintf(stderr, "outbox-cdc: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "outbox-cdc %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	var warnings []string
	cfg, err := config.Load(*cfgPath, os.Environ(), func(s string) { warnings = append(warnings, s) })
	if err != nil {
		for _, w := range warnings {
			fmt.Fprintln(stderr, "outbox-cdc: warning:", w)
		}
		fmt.Fprintln(stderr, "outbox-cdc:", err)
		return 1
	}
	logger := newLogger(cfg.Log, stderr)
	for _, w := range warnings {
		logger.Warn(w)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "run":
		err = run(ctx, cfg, logger)
	case "setup":
		if *printOnly {
			err = printSQL(cfg, !*skipTables, stdout)
		} else {
			err = setup(ctx, cfg, !*skipTables, stdout)
		}
	case "status":
		err = status(ctx, cfg, *asJSON, stdout)
	case "teardown":
		if !*yes {
			err = errors.New("teardown drops the replication slot and the publication; outbox rows committed after that are never streamed. A slot left behind pins WAL on the server forever, so do run it when removing outbox-cdc. Pass --yes to proceed")
		} else {
			err = teardown(ctx, cfg, stdout)
		}
	}
	if err != nil {
		// Every error is redacted once more here: no path may show a password.
		fmt.Fprintln(stderr, "outbox-cdc:", pgconn.RedactURL(err.Error()))
		return 1
	}
	return 0
}

// run builds the application and runs it until ctx is done. A signal
// while it starts is a clean stop: nothing was streamed yet.
func run(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	app, err := outboxcdc.New(ctx, cfg, outboxcdc.Options{Logger: logger, Version: versionString()})
	if err != nil {
		if ctx.Err() != nil {
			logger.Info("outbox-cdc stopped while starting", "err", err)
			return nil
		}
		return err
	}
	return app.Run(ctx)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level.Slog()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
