package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

func dlqCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay or discard dead letters (in Postgres; no running instance needed)",
		Long: `dlq works on the dead-letter table in Postgres directly: it needs no running
outbox-cdc. replay publishes a letter again through its sink, built from the
configuration, and marks it replayed once the broker acknowledged.`,
		RunE: parentOnly(stderr),
	}
	// open loads the config and opens the store for a subcommand.
	open := func(ctx context.Context, cfgPath string) (*config.Config, *dlq.Store, error) {
		cfg, err := config.Load(cfgPath, os.Environ(), nil)
		if err != nil {
			return nil, nil, err
		}
		store, err := dlq.Open(ctx, wiring.Postgres(cfg), cfg.DeadLetter.Table)
		if err != nil {
			return nil, nil, err
		}
		return cfg, store, nil
	}

	list := &cobra.Command{Use: "list", Short: "List dead letters, oldest first", Args: noArgs}
	listCfg := configFlag(list)
	sinkName := list.Flags().String("sink", "", "only this sink's letters")
	state := list.Flags().String("status", "", "only letters with this status: pending, replayed or discarded")
	listJSON := list.Flags().Bool("json", false, "print JSON")
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		_, store, err := open(cmd.Context(), *listCfg)
		if err != nil {
			return err
		}
		defer store.Close()
		return dlqList(cmd.Context(), store, dlq.Filter{Sink: *sinkName, Status: *state}, *listJSON, stdout)
	}

	show := &cobra.Command{Use: "show ID", Short: "Show one dead letter as JSON, with its event and the broker's error", Args: exactArgs(1, "one dead-letter ID")}
	showCfg := configFlag(show)
	show.Flags().Bool("json", true, "print JSON (the only format)")
	show.RunE = func(cmd *cobra.Command, args []string) error {
		ids, err := parseIDs(args)
		if err != nil {
			return usageError{err}
		}
		_, store, err := open(cmd.Context(), *showCfg)
		if err != nil {
			return err
		}
		defer store.Close()
		return dlqShow(cmd.Context(), store, ids[0], stdout)
	}

	replay := &cobra.Command{Use: "replay (ID... | --all)", Short: "Publish letters again through their sink, then mark them replayed"}
	replayCfg := configFlag(replay)
	all := replay.Flags().Bool("all", false, "every pending letter")
	replaySink := replay.Flags().String("sink", "", "with --all: only this sink's letters")
	replay.RunE = func(cmd *cobra.Command, args []string) error {
		ids, err := parseIDs(args)
		if err != nil {
			return usageError{err}
		}
		if (len(ids) == 0) == !*all {
			return usagef("outbox-cdc dlq replay: give IDs or --all")
		}
		cfg, store, err := open(cmd.Context(), *replayCfg)
		if err != nil {
			return err
		}
		defer store.Close()
		return dlqReplay(cmd.Context(), cfg, store, ids, *all, *replaySink, stdout)
	}

	discard := &cobra.Command{Use: "discard ID...", Short: "Mark letters discarded (the rows are kept)"}
	discardCfg := configFlag(discard)
	discardBy := discard.Flags().String("by", "", "who discards (default: the OS user)")
	discard.RunE = func(cmd *cobra.Command, args []string) error {
		ids, err := parseIDs(args)
		if err != nil {
			return usageError{err}
		}
		if len(ids) == 0 {
			return usagef("outbox-cdc dlq discard: give the IDs to discard")
		}
		_, store, err := open(cmd.Context(), *discardCfg)
		if err != nil {
			return err
		}
		defer store.Close()
		who := *discardBy
		if who == "" {
			if u, uerr := user.Current(); uerr == nil {
				who = u.Username
			}
		}
		for _, id := range ids {
			if err := store.Resolve(cmd.Context(), id, dlq.StatusDiscarded, who); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "dead letter %d discarded (kept, marked discarded by %s)\n", id, who)
		}
		return nil
	}
	cmd.AddCommand(list, show, replay, discard)
	return cmd
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
		if err := store.Replay(ctx, wiring.SinkOpener(cfg), l, "outbox-cdc dlq replay"); err != nil {
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
