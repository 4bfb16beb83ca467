package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// adapter is the Sink as the delivery engine's Adapter.
type adapter struct{ s *Sink }

// Encode implements delivery.Adapter.
func (a adapter) Encode(_ context.Context, e *event.Event, r *record) error {
	return a.s.enc.encode(e, r)
}

// Release implements delivery.Adapter: the record keeps its argument and
// byte buffers (a large one is dropped) and lets go of the event.
func (adapter) Release(r *record) { r.reset() }

// Send implements delivery.Adapter: it sends the batch (at most
// Config.BatchSize events) in one round trip and settles the events Redis
// stored (or already held), in order, up to the first failure, which it
// classifies; the events after it are not stored and are sent again. When
// Redis refused the round as a whole with a permanent error (the guard
// script did not run), it sends the events one by one to find the one at
// fault and deliver those before it. A NOSCRIPT reply (a restart or SCRIPT
// FLUSH emptied the script cache) loads the script and sends again at once.
func (a adapter) Send(ctx context.Context, b *delivery.Batch[record]) {
	s := a.s
	round := s.round[:0]
	for i := range b.Len() {
		round = append(round, b.Msg(i))
	}
	s.round = round
	defer clear(s.round)

	done, err := s.roundTrip(ctx, round)
	if err != nil && isNoScript(err) {
		if lerr := s.client.ScriptLoad(ctx, guardScript).Err(); lerr != nil {
			err = lerr
		} else {
			var n int
			n, err = s.roundTrip(ctx, round[done:])
			done += n
		}
	}
	var whole *roundError
	if err != nil && errors.As(err, &whole) && len(round)-done > 1 && sink.IsPermanent(classify(err)) {
		// Redis refused the round as a whole: one event at a time.
		for err = nil; err == nil && done < len(round); {
			var n int
			n, err = s.roundTrip(ctx, round[done:done+1])
			done += n
		}
	}
	for i := range done {
		b.Settle(i, nil)
	}
	if err == nil {
		return
	}
	b.Settle(done, classify(err))
	for i := done + 1; i < len(round); i++ {
		b.Settle(i, delivery.ErrNotSent)
	}
}

// roundTrip sends round in one round trip and returns how many of its
// events, from the first, Redis stored (or already held: those are
// reported as duplicates), and the error of the next one, if any.
func (s *Sink) roundTrip(ctx context.Context, round []*record) (int, error) {
	if s.dedup == DedupGuard {
		return s.roundTripGuard(ctx, round)
	}
	return s.roundTripTx(ctx, round)
}

// roundTripGuard runs the guard script once for the whole round.
func (s *Sink) roundTripGuard(ctx context.Context, round []*record) (int, error) {
	nomk := "0"
	if s.cfg.NoMkStream {
		nomk = "1"
	}
	args := append(s.args[:0], "evalsha", guardScriptSHA, 2*len(round))
	for _, r := range round {
		args = append(args, &r.stream, &r.guard)
	}
	args = append(args, &s.ttl, &s.maxlen, nomk)
	for _, r := range round {
		args = append(args, &r.lsn, len(r.vals)/2)
		args = append(args, r.vals...)
	}
	s.args = args
	cmd := goredis.NewSliceCmd(ctx, args...)
	_ = s.client.Process(ctx, cmd)
	defer clear(s.args)
	reply, err := cmd.Result()
	if err != nil {
		return 0, &roundError{err}
	}
	for i, v := range reply {
		switch v := v.(type) {
		case string:
			if i >= len(round) {
				return i, errors.New("redis: guard script replied with more results than events")
			}
		case []any:
			if i >= len(round) {
				return i, errors.New("redis: guard script replied with more results than events")
			}
			// A duplicate: the guard holds the stored event's commit LSN.
			s.opts.Duplicate(round[i].e, s.guardLSN(v))
		case int64:
			msg := "unexpected guard script reply " + strconv.FormatInt(v, 10)
			if v == -1 && i+1 < len(reply) {
				msg, _ = reply[i+1].(string)
			}
			return i, newServerError(msg, nil)
		default:
			return i, errors.New("redis: unexpected guard script reply")
		}
	}
	if len(reply) != len(round) {
		return len(reply), errors.New("redis: guard script replied with fewer results than events")
	}
	return len(round), nil
}

// guardLSN returns the commit LSN a guard holds, from the guard script's
// reply for a duplicate: {value} or {"", error of GET}. It returns 0 when the
// value is no LSN (a guard set by an earlier version) or could not be read;
// a read error is logged once until a read works again.
func (s *Sink) guardLSN(reply []any) uint64 {
	if len(reply) > 1 {
		if !s.guardUnreadable {
			s.guardUnreadable = true
			s.opts.Logger.Warn("redis sink: cannot read the value of a guard key, so duplicates from another commit "+
				"cannot be told from resends and count as resends; grant the ACL user +get on the guard keys",
				"sink", s.opts.Name, "address", s.cfg.Address, "err", fmt.Sprint(reply[1]))
		}
		return 0
	}
	if s.guardUnreadable {
		s.guardUnreadable = false
		s.opts.Logger.Info("redis sink: guard key values are readable again", "sink", s.opts.Name, "address", s.cfg.Address)
	}
	v, _ := reply[0].(string)
	lsn, err := event.ParseLSN(v)
	if err != nil {
		return 0
	}
	return lsn
}

// roundTripTx sends one XADD per event in one MULTI/EXEC transaction
// ("entryid", "idmp", "none"). A command Redis refuses before EXEC (out of
// memory, loading, busy, not permitted) aborts the whole transaction, so a
// transient refusal never leaves later events stored ahead of an earlier
// one; an error during EXEC (WRONGTYPE, or a resent id in "entryid") fails
// only its own command.
func (s *Sink) roundTripTx(ctx context.Context, round []*record) (int, error) {
	args := s.args[:0]
	cmds := s.cmds[:0]
	for _, r := range round {
		start := len(args)
		args = s.appendXAdd(args, r)
		// When append grows args, earlier commands keep the old array, which
		// nothing writes to again.
		cmd := goredis.NewStringCmd(ctx, args[start:len(args):len(args)]...)
		cmds = append(cmds, cmd)
		_ = s.pipe.Process(ctx, cmd)
	}
	s.args, s.cmds = args, cmds
	defer func() {
		clear(s.args)
		clear(s.cmds)
	}()
	_, _ = s.pipe.Exec(ctx)

	limit, err := len(cmds), error(nil) // events [0, limit) were stored or are duplicates
	var resent []int                    // "entryid": ids Redis refused as not above the top
	for i, cmd := range cmds {
		cerr := cmd.Err()
		if cerr == nil {
			continue
		}
		if isExecAbort(cerr) {
			return s.aborted(ctx, round, cmds)
		}
		if s.dedup == DedupEntryID && isIDNotAboveTop(cerr) {
			resent = append(resent, i)
			continue
		}
		limit, err = i, cerr
		break
	}
	if len(resent) > 0 {
		if at, verr := s.checkResent(ctx, round, resent); verr != nil && at < limit {
			limit, err = at, verr
		}
	}
	for _, i := range resent {
		if i < limit {
			s.opts.Observer.Duplicate(s.opts.Name, round[i].e)
		}
	}
	return limit, err
}

// aborted handles a transaction Redis discarded (EXECABORT): nothing of the
// round was stored. The reason is the first command refused when queued. A
// permanent reason at event k still delivers the events before k, in a
// transaction of their own, before reporting k.
func (s *Sink) aborted(ctx context.Context, round []*record, cmds []*goredis.StringCmd) (int, error) {
	at, reason := -1, error(nil)
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && !isExecAbort(err) {
			at, reason = i, err
			break
		}
	}
	if reason == nil {
		return 0, newServerError("TRYAGAIN transaction aborted without a reason", cmds[0].Err())
	}
	if !sink.IsPermanent(classify(reason)) || at == 0 {
		return 0, reason
	}
	n, err := s.roundTripTx(ctx, round[:at])
	if err != nil {
		return n, err
	}
	return at, reason
}

// appendXAdd appends the XADD arguments of r.
func (s *Sink) appendXAdd(args []any, r *record) []any {
	args = append(args, "xadd", &r.stream)
	if s.cfg.NoMkStream {
		args = append(args, "nomkstream")
	}
	if s.dedup == DedupIDMP {
		args = append(args, "idmp", &s.pid, &r.key)
	}
	if s.cfg.MaxLen > 0 {
		args = append(args, "maxlen", "~", &s.maxlen)
	}
	if s.dedup == DedupEntryID {
		args = append(args, &r.id)
	} else {
		args = append(args, "*")
	}
	return append(args, r.vals...)
}

func isExecAbort(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "EXECABORT")
}

// isIDNotAboveTop reports XADD's refusal of an explicit id that is not above
// the stream's last id.
func isIDNotAboveTop(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.Contains(re.Error(), "equal or smaller than the target stream top item")
}

// checkResent decides, for the events at idx whose entry id Redis refused as
// not above the stream's top, whether each is a duplicate: the entry with
// that id holds the same event id, or the id lies before the stream's first
// entry (it was stored, then trimmed). It returns the index of the first that
// is not, and why, or -1.
func (s *Sink) checkResent(ctx context.Context, round []*record, idx []int) (int, error) {
	pipe := s.client.Pipeline()
	ranges := make([]*goredis.XMessageSliceCmd, len(idx))
	for j, i := range idx {
		r := round[i]
		ranges[j] = pipe.XRangeN(ctx, r.stream, r.id, r.id, 1)
	}
	_, _ = pipe.Exec(ctx)
	for j, i := range idx {
		r := round[i]
		msgs, err := ranges[j].Result()
		if err != nil {
			return i, err
		}
		if len(msgs) == 1 {
			if source, id := storedIdentity(msgs[0].Values); source != r.e.Source || id != r.e.ID {
				return i, newServerError(fmt.Sprintf("IDCONFLICT entry %s of stream %q holds event %q of source %q, not this event (%q of source %q): another writer uses the stream, or the database was restored to an earlier LSN",
					r.id, r.stream, id, source, r.e.ID, r.e.Source), nil)
			}
			continue
		}
		info, err := s.client.XInfoStream(ctx, r.stream).Result()
		if err != nil {
			return i, err
		}
		if info.EntriesAdded > info.Length && (info.Length == 0 || compareEntryIDs(r.id, info.FirstEntry.ID) < 0) {
			continue // stored, then trimmed
		}
		return i, newServerError(fmt.Sprintf("IDCONFLICT stream %q is past entry id %s (last %s) but never held it: another writer uses the stream, or the database was restored to an earlier LSN", r.stream, r.id, info.LastGeneratedID), nil)
	}
	return -1, nil
}

// storedIdentity returns the CloudEvents source and id of a stored entry, of
// either layout.
func storedIdentity(values map[string]any) (source, id string) {
	if id, ok := values[FieldID].(string); ok {
		source, _ := values[FieldSource].(string)
		return source, id
	}
	if body, ok := values[FieldEvent].(string); ok {
		var v struct {
			ID     string `json:"id"`
			Source string `json:"source"`
		}
		if json.Unmarshal([]byte(body), &v) == nil {
			return v.Source, v.ID
		}
	}
	return "", ""
}

// compareEntryIDs compares stream entry ids "ms-seq" numerically.
func compareEntryIDs(a, b string) int {
	am, as := splitEntryID(a)
	bm, bs := splitEntryID(b)
	if c := cmp.Compare(am, bm); c != 0 {
		return c
	}
	return cmp.Compare(as, bs)
}

func splitEntryID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	q, _ := strconv.ParseUint(seq, 10, 64)
	return m, q
}

// roundError is an error Redis returned for a whole round trip rather than
// for one of its events.
type roundError struct{ err error }

func (e *roundError) Error() string { return e.err.Error() }

func (e *roundError) Unwrap() error { return e.err }
