package nats

import (
	"errors"
	"fmt"
	"strings"

	"github.com/outbox-cdc/outbox-cdc/sink"
)

// ErrInvalidSubject is wrapped by the error for an event whose subject
// template yields something that cannot be published to (empty tokens,
// wildcards, white space).
var ErrInvalidSubject = errors.New("nats: invalid subject")

// ErrSubjectNotInStream is wrapped by the error for an event whose subject is
// not one of the configured stream's subjects.
var ErrSubjectNotInStream = errors.New("nats: subject not in stream")

// subjectRules are what a templated subject must give: publishable, and no
// token left empty by an empty field.
var subjectRules = sink.DestinationRules{Kind: "subject", Separators: "._-", Check: checkSubject}

// Templates implements sink.Templated.
func (s *Sink) Templates() []*sink.Template { return []*sink.Template{s.subj} }

// checkSubject reports whether s can be published to.
func checkSubject(s string) error {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if c := s[i]; c <= ' ' || c == 0x7f {
				return fmt.Errorf("%w %q: contains white space or a control character", ErrInvalidSubject, s)
			}
			continue
		}
		switch s[start:i] {
		case "":
			return fmt.Errorf("%w %q: empty token", ErrInvalidSubject, s)
		case "*", ">":
			return fmt.Errorf("%w %q: wildcards cannot be published to", ErrInvalidSubject, s)
		}
		start = i + 1
	}
	return nil
}

// checkFilter reports whether s is a valid stream subject (wildcards
// allowed, ">" only as the last token).
func checkFilter(s string) error {
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("%q: empty token", s)
		case strings.ContainsAny(t, " \t\r\n"):
			return fmt.Errorf("%q: contains white space", s)
		case t == ">" && i != len(toks)-1:
			return fmt.Errorf("%q: '>' must be the last token", s)
		}
	}
	return nil
}

// matchSubject reports whether the literal subject subj matches the stream
// subject filter.
func matchSubject(filter, subj string) bool {
	for {
		ft, frest, fmore := strings.Cut(filter, ".")
		st, srest, smore := strings.Cut(subj, ".")
		if ft == ">" {
			return true
		}
		if ft != "*" && ft != st {
			return false
		}
		if !fmore || !smore {
			return fmore == smore
		}
		filter, subj = frest, srest
	}
}

func matchAny(filters []string, subj string) bool {
	for _, f := range filters {
		if matchSubject(f, subj) {
			return true
		}
	}
	return false
}

// literalTokens returns the complete literal tokens of a subject template
// before its first action: [outbox] for "outbox.{{.AggregateType}}".
func literalTokens(t *sink.Template) []string {
	s := t.String()
	if i := strings.Index(s, "{{"); i >= 0 {
		s = s[:i]
	}
	j := strings.LastIndexByte(s, '.')
	if j <= 0 {
		return nil
	}
	return strings.Split(s[:j], ".")
}

// defaultStreamSubjects returns the subjects of a stream created for t.
func defaultStreamSubjects(t *sink.Template) ([]string, error) {
	if s, static := t.Static(); static {
		return []string{s}, nil
	}
	toks := literalTokens(t)
	if len(toks) == 0 {
		return nil, fmt.Errorf("subject %q has no literal first token to derive the stream's subjects from; set stream.subjects", t.String())
	}
	return []string{strings.Join(toks, ".") + ".>"}, nil
}

// templateCovered reports whether the stream subject filters can hold the
// subjects t yields: a static subject must match a filter; for a template,
// a filter must accept subjects that start with its literal tokens and go
// on. Whether each actual subject is in the stream is checked per subject at
// run time.
func templateCovered(t *sink.Template, filters []string) bool {
	if s, static := t.Static(); static {
		return matchAny(filters, s)
	}
	toks := literalTokens(t)
next:
	for _, f := range filters {
		ft := strings.Split(f, ".")
		for i, tok := range toks {
			if i >= len(ft) {
				continue next
			}
			if ft[i] == ">" {
				return true
			}
			if ft[i] != "*" && ft[i] != tok {
				continue next
			}
		}
		if len(ft) > len(toks) {
			return true
		}
	}
	return false
}
