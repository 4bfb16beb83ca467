package config

import (
	"errors"
	"fmt"
	"strings"
)

// A KeyError is one problem with one configuration key. Load returns every
// KeyError of a configuration at once, joined with errors.Join; errors.As
// finds the first.
type KeyError struct {
	// Key is the key path, e.g. "sinks[0].retry.initial"; empty for the
	// top level.
	Key string
	// Where says where the value came from: "line 3 of outbox-cdc.yaml" or
	// "environment variable OUTBOX_CDC_WINDOW_MAX_EVENTS"; empty for a key
	// that is missing.
	Where string
	// Err is the problem. It never holds a secret value.
	Err error
}

func (e *KeyError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	msg := e.Err.Error()
	switch {
	case e.Key == "":
	case strings.HasPrefix(msg, "is "):
		b.WriteString(e.Key + " ")
	default:
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(msg)
	if e.Where != "" {
		b.WriteString(" (" + e.Where + ")")
	}
	return b.String()
}

func (e *KeyError) Unwrap() error { return e.Err }

// problems collects the KeyErrors of one Load. A key that failed to decode is
// not reported again by validation (its zero value would only say
// "required").
type problems struct {
	list   []error
	failed map[string]bool
	where  map[string]string // key path → where its value came from
}

func newProblems() *problems {
	return &problems{failed: map[string]bool{}, where: map[string]string{}}
}

// decodeErr records a key whose value could not be decoded.
func (p *problems) decodeErr(key, where string, err error) {
	p.failed[key] = true
	p.list = append(p.list, &KeyError{Key: key, Where: where, Err: err})
}

// add records a validation problem of key, unless key (or a key above it)
// already failed to decode.
func (p *problems) add(key string, format string, args ...any) {
	p.addErr(key, fmt.Errorf(format, args...))
}

func (p *problems) addErr(key string, err error) {
	for k := key; ; {
		if p.failed[k] {
			return
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	p.list = append(p.list, &KeyError{Key: key, Where: p.where[key], Err: err})
}

// addJoined records each error of a (possibly joined) error under key.
func (p *problems) addJoined(key string, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			p.addJoined(key, e)
		}
		return
	}
	p.addErr(key, err)
}

func (p *problems) err() error {
	return errors.Join(p.list...)
}
