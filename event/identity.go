package event

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// MaxDedupKeyLen is the longest dedup key, in bytes: a readable key longer
// than this is replaced by its hashed form, which is 72 bytes.
const MaxDedupKeyLen = 256

// hashedKeyPrefix starts the hashed form of a dedup key. A readable key never
// holds '%' followed by a lower-case letter, so the forms cannot meet.
const hashedKeyPrefix = "%sha256:"

// DedupKey returns the event's identity, its source and id, as one string:
// the key that every broker deduplication outbox-cdc sets up uses (NATS
// Nats-Msg-Id, the Redis guard key and IDMP id). CloudEvents makes
// source + id unique, not the id alone.
//
// The format: the source and the id, each percent-encoded (every byte of
// space, '"', '%', '|' and of everything outside printable ASCII
// U+0021-U+007E becomes %XY, upper-case hex), joined by one '|':
// "/shipping|1001", "urn:x%20y|id%7C2". Decoding is unambiguous: the only
// raw '|' is the separator. A key longer than MaxDedupKeyLen bytes becomes
// "%sha256:" followed by the lower-case hex SHA-256 of that readable key.
// Every key is printable ASCII without spaces, so it is a valid NATS header
// value and Redis key.
func (e *Event) DedupKey() string { return DedupKey(e.Source, e.ID) }

// DedupKey returns the dedup key of the event identity (source, id); see
// [Event.DedupKey].
func DedupKey(source, id string) string {
	return string(AppendDedupKey(make([]byte, 0, len(source)+len(id)+1), source, id))
}

// AppendDedupKey appends the dedup key of (source, id) to dst; see
// [Event.DedupKey].
func AppendDedupKey(dst []byte, source, id string) []byte {
	start := len(dst)
	dst = appendKeyPart(dst, source)
	dst = append(dst, '|')
	dst = appendKeyPart(dst, id)
	if len(dst)-start <= MaxDedupKeyLen {
		return dst
	}
	sum := sha256.Sum256(dst[start:])
	dst = append(dst[:start], hashedKeyPrefix...)
	return hex.AppendEncode(dst, sum[:])
}

// appendKeyPart appends s with every byte outside printable ASCII, and
// space, '"', '%' and '|', percent-encoded. Unlike a header value of the
// CloudEvents NATS binding, invalid UTF-8 is kept byte for byte, so that
// different inputs never give the same key.
func appendKeyPart(dst []byte, s string) []byte {
	const upperHex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' || c == '|' {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xf])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// FormatLSN formats a WAL position as PostgreSQL prints a pg_lsn and as the
// pglsn extension carries it: "16/B374D848" (upper-case hex).
func FormatLSN(lsn uint64) string { return string(AppendLSN(make([]byte, 0, 17), lsn)) }

// AppendLSN appends lsn formatted as FormatLSN does.
func AppendLSN(dst []byte, lsn uint64) []byte {
	dst = appendUpperHex(dst, lsn>>32)
	dst = append(dst, '/')
	return appendUpperHex(dst, lsn&0xFFFFFFFF)
}

func appendUpperHex(dst []byte, v uint64) []byte {
	start := len(dst)
	dst = strconv.AppendUint(dst, v, 16)
	for i := start; i < len(dst); i++ {
		if c := dst[i]; c >= 'a' {
			dst[i] = c - 'a' + 'A'
		}
	}
	return dst
}

// ParseLSN parses a WAL position in pg_lsn form ("16/B374D848", hex digits
// of either case, each half at most 32 bits).
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, errors.New("event: LSN " + strconv.Quote(s) + " is not of the form X/Y")
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, errors.New("event: LSN " + strconv.Quote(s) + " is not of the form X/Y (hex, 32 bits each)")
	}
	return h<<32 | l, nil
}
