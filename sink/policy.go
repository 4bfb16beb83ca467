package sink

import "fmt"

// Policy says what a sink does with an event it can never deliver.
type Policy string

// Policies.
const (
	// PolicyBlock (the default) keeps retrying the event: the slot holds and
	// /readyz says why, until the destination accepts it.
	PolicyBlock Policy = "block"
	// PolicyDeadLetter stores the event in the dead-letter table, counts it
	// as acknowledged by this sink, and goes on.
	PolicyDeadLetter Policy = "dead-letter"
)

// UnmarshalText accepts "block" and "dead-letter" (and "" for the default),
// so a configuration file is refused while it is decoded.
func (p *Policy) UnmarshalText(b []byte) error {
	switch v := Policy(b); v {
	case "", PolicyBlock, PolicyDeadLetter:
		*p = v
		return nil
	}
	return fmt.Errorf("%q is not a policy (want %s or %s)", b, PolicyBlock, PolicyDeadLetter)
}
