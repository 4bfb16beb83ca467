package decoder

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Handler receives what the decoder finds, in stream order. Begin and Commit
// bracket every transaction; Event is called for each outbox row and each
// message event in between. An error returned by the handler stops Decode and
// is returned by it.
type Handler interface {
	Begin(commitLSN uint64, commitTime time.Time) error
	Event(e *event.Event) error
	Commit(commitLSN, endLSN uint64, commitTime time.Time) error
}

// Decoder decodes one replication stream. Not safe for concurrent use.
type Decoder struct {
	cfg    Config
	logger *slog.Logger
	tables map[string]*Table // by schema.table
	rels   map[uint32]*relation
	types  *pgtype.Map

	catalog     Catalog // nil: relations map by name
	publication string

	// current transaction
	inTx       bool
	commitLSN  uint64
	commitTime time.Time
	lsnText    string
	seq        int
	bad        int // rows and messages of this transaction that failed

	cols       []column // scratch for tuples
	lastSource string   // the last source that passed validation
	lastCT     string   // the last datacontenttype that passed validation
	lastSchema string   // the last dataschema that passed validation
	interned   map[string]string

	enc               *encoding   // the server encoding; text is converted from it
	conv              []byte      // scratch for converted text
	spans             []span      // where each converted column is in conv
	jc                jsonChecker // I-JSON checks of json and text values
	loggedMessagesOff bool        // the first message ignored under MessagesOff was logged
}

// New returns a Decoder for cfg; logger may be nil.
func New(cfg Config, logger *slog.Logger) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	cfg = cfg.WithDefaults()
	enc := &encoding{name: "unknown", kind: encUnchecked}
	if cfg.ServerEncoding != "" {
		var err error
		if enc, err = lookupEncoding(cfg.ServerEncoding); err != nil {
			return nil, fmt.Errorf("decoder: %w", err)
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Decoder{
		cfg:    cfg,
		logger: logger,
		tables: make(map[string]*Table),
		rels:   make(map[uint32]*relation),
		types:  pgtype.NewMap(),

		interned: make(map[string]string),
		enc:      enc,
	}
	for i := range cfg.Tables {
		d.tables[cfg.Tables[i].Name] = &cfg.Tables[i]
	}
	return d, nil
}

// Reset forgets the transaction in progress and the relation cache, after the
// stream was cut: on a new connection the server sends a Relation message
// again before the first change of each relation.
func (d *Decoder) Reset() {
	d.inTx = false
	clear(d.rels)
}

// Decode decodes one pgoutput message (the payload of an XLogData message that
// started at walStart) and calls h. The message bytes are not retained. Its
// errors say whether retrying can help (sink.IsPermanent): an *Error (a row
// that cannot become an event) and a malformed message (ErrProtocol) are
// permanent; the Catalog's and h's errors are returned as they are, with
// their own verdict.
func (d *Decoder) Decode(walStart uint64, msg []byte, h Handler) error {
	if len(msg) == 0 {
		return fmt.Errorf("%w: empty message at LSN %s", ErrProtocol, FormatLSN(walStart))
	}
	r := reader{b: msg, off: 1}
	switch msg[0] {
	case msgBegin:
		final := r.u64("begin final LSN")
		ts := int64(r.u64("begin commit time"))
		r.u32("begin xid")
		if r.err != nil {
			return r.err
		}
		d.inTx, d.commitLSN, d.commitTime, d.seq, d.bad = true, final, pgTime(ts), 0, 0
		d.lsnText = FormatLSN(final)
		return h.Begin(final, d.commitTime)
	case msgCommit:
		r.u8("commit flags")
		commit := r.u64("commit LSN")
		end := r.u64("commit end LSN")
		ts := int64(r.u64("commit time"))
		if r.err != nil {
			return r.err
		}
		if !d.inTx {
			return fmt.Errorf("%w: commit at LSN %s without begin", ErrProtocol, FormatLSN(commit))
		}
		d.inTx = false
		return h.Commit(commit, end, pgTime(ts))
	case msgRelation:
		return d.relation(&r)
	case msgInsert:
		return d.insert(&r, walStart, h)
	case msgMessage:
		return d.message(&r, walStart, h)
	case msgOrigin, msgType, msgUpdate, msgDelete, msgTruncate:
		return nil
	default:
		// Newer protocol versions add messages (stream, prepare); with
		// streaming and two-phase off they are not sent. Skip, but say so.
		d.logger.Warn("skipping unknown pgoutput message", "type", string(msg[0]), "lsn", FormatLSN(walStart))
		return nil
	}
}

// failed numbers an input of the transaction that could not become an event.
func (d *Decoder) failed(e *Error) *Error {
	e.Pos = d.seq + d.bad
	d.bad++
	return e
}

// FormatLSN formats an LSN as PostgreSQL prints a pg_lsn: "16/B374D848".
func FormatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn))
}
