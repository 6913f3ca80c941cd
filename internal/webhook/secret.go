package webhook

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Secret returns an endpoint's current secret; an empty one disables the
// endpoint.
type Secret func() []byte

// Fixed returns a Secret that is always b.
func Fixed(b []byte) Secret {
	return func() []byte { return b }
}

// maxSecret bounds a secret file: anything larger is not a secret someone
// typed into a webhook form.
const maxSecret = 64 << 10

// File returns a Secret read from path, and read again whenever the file
// changes: a Kubernetes Secret mounted as a volume is replaced in place
// when it is created or rotated, and the agent picks it up without a
// restart. A file that is missing, unreadable or larger than 64 KiB
// disables the endpoint until it is fixed. Trailing newlines are dropped.
func File(path string) Secret {
	f := &fileSecret{path: path}
	return f.get
}

type fileSecret struct {
	path string

	mu    sync.Mutex
	mod   time.Time
	size  int64
	value []byte
}

func (f *fileSecret) get() []byte {
	st, err := os.Stat(f.path)
	if err != nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.value != nil && st.ModTime().Equal(f.mod) && st.Size() == f.size {
		return f.value
	}
	v, err := ReadSecretFile(f.path)
	if err != nil {
		f.value = nil
		return nil
	}
	f.mod, f.size, f.value = st.ModTime(), st.Size(), v
	return v
}

// ReadSecretFile reads a secret from path, without trailing newlines.
func ReadSecretFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = fh.Close() }()
	b, err := io.ReadAll(io.LimitReader(fh, maxSecret+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecret {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, maxSecret>>10)
	}
	return bytes.TrimRight(b, "\r\n"), nil
}
