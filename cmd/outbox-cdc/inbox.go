package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/outbox-cdc/outbox-cdc/handler/inbox"
	pgconn "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

const inboxLong = `The consumer inbox of the Go handler framework (docs/handlers.md), in the
consumer's own database (--url, default $OUTBOX_CDC_INBOX_URL). An ID is an
event id; --source (and --consumer) tell apart events of different sources or
consumers that share it.`

// inboxCmd is ` + "`outbox-cdc inbox list|replay|discard|migrate`" + `.
func inboxCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inbox",
		Short: "List, replay or discard events a Go consumer parked; create the inbox table",
		Long:  inboxLong,
		Args:  noArgs,
	}
	var url, table, consumer, source string
	pf := cmd.PersistentFlags()
	pf.StringVar(&url, "url", os.Getenv("OUTBOX_CDC_INBOX_URL"), "the consumer's database (default $OUTBOX_CDC_INBOX_URL)")
	pf.StringVar(&table, "table", inbox.DefaultTable, "the inbox table")
	// open connects to the consumer's database; the caller closes the pool.
	open := func(ctx context.Context) (*pgxpool.Pool, error) {
		if url == "" {
			return nil, usagef("--url (or OUTBOX_CDC_INBOX_URL) is required: the consumer's database, where its inbox table is")
		}
		pool, err := pgxpool.New(ctx, url)
		if err == nil {
			if err = pool.Ping(ctx); err != nil {
				pool.Close()
			}
		}
		if err != nil {
			return nil, errors.New(pgconn.RedactURL(err.Error()))
		}
		return pool, nil
	}
	withInbox := func(ctx context.Context, do func(*inbox.Inbox) error) error {
		pool, err := open(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		ib, err := inbox.New(pool, inbox.Config{Table: table})
		if err != nil {
			return usageError{err}
		}
		return do(ib)
	}
	filters := func(c *cobra.Command) {
		c.Flags().StringVar(&consumer, "consumer", "", "only this consumer's events")
		c.Flags().StringVar(&source, "source", "", "only events of this source")
	}

	list := &cobra.Command{Use: "list", Short: "List parked (and, with --state, other) inbox events", Args: noArgs}
	filters(list)
	var state string
	var asJSON bool
	list.Flags().StringVar(&state, "state", "", "parked, replay, discarded, done or all, comma-separated (default: all but done)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	list.RunE = func(c *cobra.Command, _ []string) error {
		f := inbox.Filter{Consumer: consumer, Source: source}
		switch state {
		case "":
		case "all":
			f.States = []string{"done", "parked", "replay", "discarded"}
		default:
			f.States = strings.Split(state, ",")
		}
		return withInbox(c.Context(), func(ib *inbox.Inbox) error { return inboxList(c.Context(), ib, f, asJSON, stdout) })
	}

	setter := func(verb, short string) *cobra.Command {
		c := &cobra.Command{Use: verb + " (ID... | --all)", Short: short, Args: cobra.ArbitraryArgs}
		filters(c)
		var all bool
		c.Flags().BoolVar(&all, "all", false, "every parked event the filters select")
		c.RunE = func(c *cobra.Command, ids []string) error {
			if (len(ids) == 0) == !all {
				return usagef("give event IDs or --all")
			}
			f := inbox.Filter{Consumer: consumer, Source: source, IDs: ids, States: []string{"parked"}}
			if verb == "replay" {
				f.States = append(f.States, "discarded")
			}
			return withInbox(c.Context(), func(ib *inbox.Inbox) error { return inboxSet(c.Context(), ib, verb, f, stdout) })
		}
		return c
	}

	migrate := &cobra.Command{Use: "migrate", Short: "Create the inbox table and its indexes (idempotent)", Args: noArgs}
	migrate.RunE = func(c *cobra.Command, _ []string) error {
		pool, err := open(c.Context())
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := inbox.Migrate(c.Context(), pool, table); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "inbox table %s is in place\n", table)
		return nil
	}
	cmd.AddCommand(list,
		setter("replay", "Mark parked events for replay: the running consumer runs them again, once, within its replay interval (default 5s)"),
		setter("discard", "Set parked events aside for good"),
		migrate)
	return cmd
}

func inboxList(ctx context.Context, ib *inbox.Inbox, f inbox.Filter, asJSON bool, out io.Writer) error {
	es, err := ib.List(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		if es == nil {
			es = []inbox.Entry{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(es)
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONSUMER\tSOURCE\tID\tTYPE\tKEY\tSTATE\tATTEMPTS\tSINCE\tREASON")
	for _, e := range es {
		reason := e.Reason
		if len(reason) > 80 {
			reason = reason[:77] + "..."
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Consumer, e.Source, e.ID, e.Type, e.Key, e.State, e.Attempts,
			e.UpdatedAt.UTC().Format(time.RFC3339), reason)
	}
	return w.Flush()
}

// inboxSet marks the selected parked events for replay or discards them.
// Every given id must select exactly one event.
func inboxSet(ctx context.Context, ib *inbox.Inbox, verb string, f inbox.Filter, out io.Writer) error {
	es, err := ib.List(ctx, f)
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, e := range es {
		count[e.ID]++
	}
	for _, id := range f.IDs {
		switch count[id] {
		case 0:
			return fmt.Errorf("no parked event with id %q%s", id, filterText(f))
		case 1:
		default:
			return fmt.Errorf("%d parked events have id %q%s: add --source and --consumer to name one (outbox-cdc inbox list)", count[id], id, filterText(f))
		}
	}
	var errs []error
	for _, e := range es {
		var err error
		if verb == "replay" {
			err = ib.Replay(ctx, e.Consumer, e.Source, e.ID)
		} else {
			err = ib.Discard(ctx, e.Consumer, e.Source, e.ID)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if verb == "replay" {
			fmt.Fprintf(out, "event %s (source %s) marked for replay by consumer %s\n", e.ID, e.Source, e.Consumer)
		} else {
			fmt.Fprintf(out, "event %s (source %s) of consumer %s discarded (kept; skipped when delivered again)\n", e.ID, e.Source, e.Consumer)
		}
	}
	return errors.Join(errs...)
}

func filterText(f inbox.Filter) string {
	var s []string
	if f.Consumer != "" {
		s = append(s, "consumer "+f.Consumer)
	}
	if f.Source != "" {
		s = append(s, "source "+f.Source)
	}
	if len(s) == 0 {
		return ""
	}
	return " (" + strings.Join(s, ", ") + ")"
}
