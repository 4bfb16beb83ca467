package sink

import "fmt"

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
