package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/handler/inbox"
	pgconn "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

const inboxUsage = `usage: outbox-cdc inbox <list|replay|discard|migrate> --url URL [flags] [ID...]

The consumer inbox of the Go handler framework (docs/handlers.md), in the
consumer's own database (--url, default $OUTBOX_CDC_INBOX_URL).

  list     [--consumer C] [--source S] [--state parked|replay|discarded|done|all] [--json]
  replay   ID... | --all [--consumer C] [--source S]
           mark parked events for replay: the running consumer runs them
           again, once, within its replay interval (default 5s)
  discard  ID... | --all [--consumer C] [--source S]   set parked events aside for good
  migrate  create the inbox table and its indexes (idempotent)

  --table NAME   the inbox table (default public.outbox_inbox)

An ID is an event id; --source (and --consumer) tell apart events of
different sources or consumers that share it.
`

// inboxCommand runs `outbox-cdc inbox ...`. args are what follows "inbox".
func inboxCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, inboxUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("inbox "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", os.Getenv("OUTBOX_CDC_INBOX_URL"), "the consumer's database")
	table := fs.String("table", inbox.DefaultTable, "the inbox table")
	consumer := fs.String("consumer", "", "only this consumer's events")
	source := fs.String("source", "", "only events of this source")
	state := fs.String("state", "", "list: parked, replay, discarded, done or all (default: all but done)")
	asJSON := fs.Bool("json", false, "list: print JSON")
	all := fs.Bool("all", false, "replay, discard: every parked event the filters select")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch sub {
	case "list", "replay", "discard", "migrate":
	default:
		fmt.Fprint(stderr, inboxUsage)
		return 2
	}
	if *url == "" {
		fmt.Fprintln(stderr, "outbox-cdc inbox: --url (or OUTBOX_CDC_INBOX_URL) is required: the consumer's database, where its inbox table is")
		return 2
	}
	pool, err := pgxpool.New(ctx, *url)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc inbox:", pgconn.RedactURL(err.Error()))
		return 1
	}
	defer pool.Close()
	if sub == "migrate" {
		if err := inbox.Migrate(ctx, pool, *table); err != nil {
			fmt.Fprintln(stderr, "outbox-cdc inbox:", err)
			return 1
		}
		fmt.Fprintf(stdout, "inbox table %s is in place\n", *table)
		return 0
	}
	ib, err := inbox.New(pool, inbox.Config{Table: *table})
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc inbox:", err)
		return 2
	}
	f := inbox.Filter{Consumer: *consumer, Source: *source, IDs: fs.Args()}
	switch sub {
	case "list":
		switch *state {
		case "":
		case "all":
			f.States = []string{"done", "parked", "replay", "discarded"}
		default:
			f.States = strings.Split(*state, ",")
		}
		err = inboxList(ctx, ib, f, *asJSON, stdout)
	case "replay", "discard":
		if (len(f.IDs) == 0) == !*all {
			fmt.Fprintf(stderr, "outbox-cdc inbox %s: give event IDs or --all\n", sub)
			return 2
		}
		f.States = []string{"parked"}
		if sub == "replay" {
			f.States = append(f.States, "discarded")
		}
		err = inboxSet(ctx, ib, sub, f, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc inbox:", err)
		return 1
	}
	return 0
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
