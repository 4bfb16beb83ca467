// Command outbox-cdc streams outbox rows from PostgreSQL logical replication
// to brokers as CloudEvents.
//
//	outbox-cdc run      --config FILE   stream until SIGINT/SIGTERM
//	outbox-cdc setup    --config FILE   create table, publication and slot, grant privileges
//	                   [--print-sql]     print that SQL for a DBA instead (no connection)
//	outbox-cdc status   --config FILE [--json]
//	outbox-cdc teardown --config FILE --yes
//	outbox-cdc backfill --config FILE (--since T | --from T --to T | --ids ID,...)
//	outbox-cdc dlq      list | show ID | replay ID... | discard ID...
//	outbox-cdc sinks    [pause NAME | resume NAME]          (a running instance's admin API)
//	outbox-cdc events   find | show ID | republish ID --sink NAME
//	outbox-cdc admin    token | hash-password
//	outbox-cdc healthcheck [--addr HOST:PORT]
//	outbox-cdc inbox    list|replay|discard|migrate --url URL   (the handler framework's inbox)
//	outbox-cdc completion bash|zsh|fish|powershell
//	outbox-cdc version
//
// The command line is built with cobra: each command's --help lists its own
// flags, flags may follow positional arguments, and `completion` writes
// shell completion. Exit status: 0 success, 1 failure, 2 wrong usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is wrong usage: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries an exit status for a failure already reported.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// realMain runs the command line args and returns the exit status.
func realMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	ran := false // a command's RunE started: its errors are failures, earlier ones usage
	root.PersistentPreRun = func(*cobra.Command, []string) { ran = true }
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return int(ee)
	}
	var ue usageError
	if !ran || errors.As(err, &ue) {
		fmt.Fprintf(stderr, "outbox-cdc: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(stderr, "run `%s --help` for usage\n", cmd.CommandPath())
		}
		return 2
	}
	// Every error is redacted once more here: no path may show a password.
	fmt.Fprintln(stderr, "outbox-cdc:", pgconn.RedactURL(err.Error()))
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "outbox-cdc",
		Short: "Stream outbox rows from PostgreSQL logical replication to brokers as CloudEvents",
		Long: `outbox-cdc streams outbox rows from PostgreSQL logical replication to Kafka,
NATS JetStream, Redis Streams or a file as CloudEvents, confirming the
replication slot only after the brokers acknowledged.

Every command that reads the configuration takes --config FILE (default
$OUTBOX_CDC_CONFIG); every config key can be overridden by an environment
variable, e.g. OUTBOX_CDC_POSTGRES_URL. Documentation: docs/ or the docs site.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       versionString(),
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q", args[0])
			}
			cmd.SetOut(stderr)
			cmd.Usage()
			return exitError(2)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate(versionText())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddGroup(&cobra.Group{ID: "stream", Title: "Streaming:"}, &cobra.Group{ID: "repair", Title: "Repair:"},
		&cobra.Group{ID: "console", Title: "A running instance (admin API):"}, &cobra.Group{ID: "other", Title: "Other:"})
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	for _, c := range []*cobra.Command{runCmd(stderr), setupCmd(stdout, stderr), statusCmd(stdout, stderr), teardownCmd(stdout, stderr)} {
		c.GroupID = "stream"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{backfillCmd(stdout, stderr), dlqCmd(stdout, stderr), inboxCmd(stdout)} {
		c.GroupID = "repair"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{sinksCmd(stdout), eventsCmd(stdout)} {
		c.GroupID = "console"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{healthcheckCmd(stdout, stderr), adminCmd(stdout), versionCmd(stdout)} {
		c.GroupID = "other"
		root.AddCommand(c)
	}
	return root
}

// configFlag adds --config to cmd and returns where its value goes.
func configFlag(cmd *cobra.Command) *string {
	p := new(string)
	cmd.Flags().StringVar(p, "config", os.Getenv("OUTBOX_CDC_CONFIG"), "YAML config file (default $OUTBOX_CDC_CONFIG)")
	cmd.MarkFlagFilename("config", "yaml", "yml")
	return p
}

// loadConfig loads the configuration; the error is reported as a failure
// (exit 1) with the warnings first.
func loadConfig(path string, stderr io.Writer) (*config.Config, []string, error) {
	var warnings []string
	cfg, err := config.Load(path, os.Environ(), func(s string) { warnings = append(warnings, s) })
	if err != nil {
		for _, w := range warnings {
			fmt.Fprintln(stderr, "outbox-cdc: warning:", w)
		}
		return nil, nil, err
	}
	return cfg, warnings, nil
}

// withConfig loads the configuration and a logger for commands that log.
func withConfig(path string, stderr io.Writer) (*config.Config, *slog.Logger, error) {
	cfg, warnings, err := loadConfig(path, stderr)
	if err != nil {
		return nil, nil, err
	}
	logger := newLogger(cfg.Log, stderr)
	for _, w := range warnings {
		logger.Warn(w)
	}
	return cfg, logger, nil
}

func runCmd(stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Stream outbox events to the configured sinks until SIGINT/SIGTERM",
		Args:  noArgs,
	}
	cfgPath := configFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, logger, err := withConfig(*cfgPath, stderr)
		if err != nil {
			return err
		}
		return run(cmd.Context(), cfg, logger)
	}
	return cmd
}

func setupCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the outbox table, publication and slot and grant privileges (idempotent)",
		Long: `setup creates what is missing, idempotently: the outbox tables, the
dead-letter and progress tables, the publication, the DDL guard, the
replication slot, and with admin.enabled the indexes the console's searches
use; it grants the configured roles their privileges. --print-sql prints that
SQL for a DBA instead, without connecting.`,
		Args: noArgs,
	}
	cfgPath := configFlag(cmd)
	skipTables := cmd.Flags().Bool("skip-tables", false, "do not create outbox tables")
	printOnly := cmd.Flags().Bool("print-sql", false, "print the SQL (DDL and GRANTs) for a DBA instead of running it; no connection")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, _, err := withConfig(*cfgPath, stderr)
		if err != nil {
			return err
		}
		if *printOnly {
			return printSQL(cfg, !*skipTables, stdout)
		}
		return setup(cmd.Context(), cfg, !*skipTables, stdout)
	}
	return cmd
}

func statusCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the replication slot (confirmed position, lag, retained WAL) and the running instance",
		Args:  noArgs,
	}
	cfgPath := configFlag(cmd)
	asJSON := cmd.Flags().Bool("json", false, "print JSON")
	token := tokenFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, _, err := withConfig(*cfgPath, stderr)
		if err != nil {
			return err
		}
		return status(cmd.Context(), cfg, *token, *asJSON, stdout)
	}
	return cmd
}

func teardownCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "teardown",
		Short: "Drop the replication slot and the publication (needs --yes)",
		Args:  noArgs,
	}
	cfgPath := configFlag(cmd)
	yes := cmd.Flags().Bool("yes", false, "really drop the slot and publication")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, _, err := withConfig(*cfgPath, stderr)
		if err != nil {
			return err
		}
		if !*yes {
			return errors.New("teardown drops the replication slot and the publication; outbox rows committed after that are never streamed. A slot left behind pins WAL on the server forever, so do run it when removing outbox-cdc. Pass --yes to proceed")
		}
		return teardown(cmd.Context(), cfg, stdout)
	}
	return cmd
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Args:  noArgs,
		Run:   func(*cobra.Command, []string) { printVersion(stdout) },
	}
}

// noArgs refuses positional arguments as wrong usage.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// exactArgs wants n positional arguments.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: want %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

// parentOnly makes a command with subcommands print its help on stderr and
// exit 2 when run without one.
func parentOnly(stderr io.Writer) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("%s: unknown command %q", cmd.CommandPath(), args[0])
		}
		cmd.SetOut(stderr)
		cmd.Usage()
		return exitError(2)
	}
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

// versionText is what `outbox-cdc --version` prints: `outbox-cdc version`.
func versionText() string {
	var b strings.Builder
	printVersion(&b)
	return b.String()
}
