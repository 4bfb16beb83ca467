package delivery

import "errors"

// ErrNotSent settles a message an adapter did not send because an earlier
// one of its batch failed. It is transient: the message is sent again.
var ErrNotSent = errors.New("delivery: not sent, an earlier message of its batch failed")

// Permanent marks err as one that retrying cannot fix, for sink.IsPermanent.
// The engine reports it as a *sink.PermanentError naming the event, with
// err (not the mark) as its cause. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

type permanent struct{ err error }

func (p *permanent) Error() string   { return p.err.Error() }
func (p *permanent) Unwrap() error   { return p.err }
func (p *permanent) Permanent() bool { return true }
