package testenv

import (
	"crypto/rand"
	"testing"
)

// RandomString returns n random characters of alphabet, for credentials
// made up at test time (never committed).
func RandomString(t testing.TB, alphabet string, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
