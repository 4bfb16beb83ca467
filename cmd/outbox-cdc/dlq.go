package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

const dlqUsage = `usage: outbox-cdc dlq <list|show|replay|discard> [flags] [ID...]

  list    [--sink NAME] [--status pending|replayed|discarded] [--json]
  show    ID [--json]
  replay  ID... | --all [--sink NAME]   publish again through the sink, then mark replayed
  discard ID... [--by NAME]             mark discarded (the row is kept)
`

// dlqCommand runs `outbox-cdc dlq ...`. args are what follows "dlq".
func dlqCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("OUTBOX_CDC_CONFIG"), "YAML config file")
	sinkName := fs.String("sink", "", "only this sink's letters")
	status := fs.String("status", "", "list: only letters with this status")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "replay: every pending letter")
	by := fs.String("by", "", "discard: who discards (default: the OS user)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.Environ(), nil)
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc:", err)
		return 1
	}
	store, err := dlq.Open(ctx, wiring.Postgres(cfg), cfg.DeadLetter.Table)
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc:", err)
		return 1
	}
	defer store.Close()
	ids, err := parseIDs(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc dlq:", err)
		return 2
	}
	switch sub {
	case "list":
		err = dlqList(ctx, store, dlq.Filter{Sink: *sinkName, Status: *status}, *asJSON, stdout)
	case "show":
		if len(ids) != 1 {
			fmt.Fprint(stderr, dlqUsage)
			return 2
		}
		err = dlqShow(ctx, store, ids[0], stdout)
	case "replay":
		if (len(ids) == 0) == !*all {
			fmt.Fprintln(stderr, "outbox-cdc dlq replay: give IDs or --all")
			return 2
		}
		err = dlqReplay(ctx, cfg, store, ids, *all, *sinkName, stdout)
	case "discard":
		if len(ids) == 0 {
			fmt.Fprint(stderr, dlqUsage)
			return 2
		}
		who := *by
		if who == "" {
			if u, uerr := user.Current(); uerr == nil {
				who = u.Username
			}
		}
		for _, id := range ids {
			if err = store.Resolve(ctx, id, dlq.StatusDiscarded, who); err != nil {
				break
			}
			fmt.Fprintf(stdout, "dead letter %d discarded (kept, marked discarded by %s)\n", id, who)
		}
	default:
		fmt.Fprint(stderr, dlqUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc:", err)
		return 1
	}
	return 0
}

func parseIDs(args []string) ([]int64, error) {
	var ids []int64
	for _, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a dead-letter id", a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func dlqList(ctx context.Context, store *dlq.Store, f dlq.Filter, asJSON bool, out io.Writer) error {
	letters, err := store.List(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if letters == nil {
			letters = []dlq.Letter{}
		}
		return enc.Encode(letters)
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSINK\tEVENT\tLSN\tATTEMPTS\tLAST FAILURE\tSTATUS\tERROR")
	for _, l := range letters {
		s := l.Sink
		if s == "" {
			s = "(decoder)"
		}
		msg := l.Error
		if len(msg) > 80 {
			msg = msg[:77] + "..."
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.ID, s, l.EventID, l.CommitLSN, l.Attempts,
			l.LastFailedAt.UTC().Format(time.RFC3339), l.Status, msg)
	}
	return w.Flush()
}

func dlqShow(ctx context.Context, store *dlq.Store, id int64, out io.Writer) error {
	l, err := store.Get(ctx, id)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(l)
}

// dlqReplay publishes letters again through their sink, built from the
// config, and marks them replayed once acknowledged; a letter that fails again
// gets its attempts counted.
func dlqReplay(ctx context.Context, cfg *config.Config, store *dlq.Store, ids []int64, all bool, sinkName string, out io.Writer) error {
	var letters []dlq.Letter
	if all {
		ls, err := store.List(ctx, dlq.Filter{Sink: sinkName, Status: dlq.StatusPending})
		if err != nil {
			return err
		}
		letters = ls
	} else {
		for _, id := range ids {
			l, err := store.Get(ctx, id)
			if err != nil {
				return err
			}
			letters = append(letters, l)
		}
	}
	failed := 0
	for _, l := range letters {
		if err := replayOne(ctx, cfg, store, l); err != nil {
			failed++
			fmt.Fprintf(out, "dead letter %d: %v\n", l.ID, err)
			continue
		}
		fmt.Fprintf(out, "dead letter %d (event %s) replayed to sink %s\n", l.ID, l.EventID, l.Sink)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d dead letters could not be replayed", failed, len(letters))
	}
	return nil
}

func replayOne(ctx context.Context, cfg *config.Config, store *dlq.Store, l dlq.Letter) error {
	if l.Status != dlq.StatusPending {
		return fmt.Errorf("status is %s, not pending", l.Status)
	}
	if l.Sink == dlq.DecoderSink || l.Event == nil {
		return errors.New("a row that could not be decoded cannot be replayed: fix the data, insert a corrected outbox row, then discard this letter")
	}
	var sc *config.Sink
	for i := range cfg.Sinks {
		if cfg.Sinks[i].Name == l.Sink {
			sc = &cfg.Sinks[i]
		}
	}
	if sc == nil {
		return fmt.Errorf("no sink named %q in the config", l.Sink)
	}
	e, err := event.ParseJSON(l.Event)
	if err != nil {
		return err
	}
	e.AggregateType, e.Table = l.AggregateType, l.Table
	if l.Position != nil {
		e.Seq = *l.Position // a Redis sink derives its entry id from it
	}
	if lsn, err := pglogrepl.ParseLSN(l.CommitLSN); err == nil {
		e.CommitLSN = uint64(lsn)
	}
	done := make(chan struct{})
	var once sync.Once
	s, err := wiring.OpenSink(ctx, *sc, sink.Options{Name: sc.Name, Ack: func(*event.Event) { once.Do(func() { close(done) }) }})
	if err != nil {
		return err
	}
	defer s.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err = s.Publish(rctx, []*event.Event{e})
	if err == nil {
		err = s.Flush(rctx)
	}
	if err == nil {
		select {
		case <-done:
		case <-rctx.Done():
			err = fmt.Errorf("sink %s did not acknowledge within 2m", sc.Name)
		}
	}
	if err != nil {
		if ferr := store.Failed(ctx, l.ID, err); ferr != nil {
			return errors.Join(err, ferr)
		}
		return fmt.Errorf("failed again (attempts counted): %w", err)
	}
	return store.Resolve(ctx, l.ID, dlq.StatusReplayed, "outbox-cdc dlq replay")
}
