package apply

import "time"

// SetEstablishTimeout shortens the wait for CRDs to be established, for a
// test; the returned func restores it.
func SetEstablishTimeout(d time.Duration) func() {
	old := establishTimeout
	establishTimeout = d
	return func() { establishTimeout = old }
}
