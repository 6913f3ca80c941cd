package source

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// A listing body is read to its limit: one of exactly that size ends as
// usual, one byte more is refused.
func TestLimitedBody(t *testing.T) {
	for _, tc := range []struct {
		size int
		ok   bool
	}{{99, true}, {100, true}, {101, false}, {5000, false}} {
		l := &bodyLimit{bytes: 100, what: "reference listing"}
		b := &limitedBody{ReadCloser: io.NopCloser(strings.NewReader(strings.Repeat("x", tc.size))), left: 100, limit: l}
		got, err := io.ReadAll(b)
		if tc.ok && (err != nil || len(got) != tc.size) {
			t.Errorf("%d bytes, limit 100: read %d, %v", tc.size, len(got), err)
		}
		if !tc.ok && (!errors.Is(err, ErrUnsafe) || len(got) != 100) {
			t.Errorf("%d bytes, limit 100: read %d, %v; want 100 and ErrUnsafe", tc.size, len(got), err)
		}
		// What go-git may make of the error: the limit still names it.
		if refused := l.refused(errors.New("error decoding: " + fmt.Sprint(err))); tc.ok == errors.Is(refused, ErrUnsafe) {
			t.Errorf("%d bytes, limit 100: a wrapped read error becomes %v", tc.size, refused)
		}
	}
}
