package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// refLineBytes is what one advertised reference may take on average in a
// listing read over HTTP(S): a pkt-line's length, the hash, the name.
const refLineBytes = 256

// bodyLimit bounds what go-git reads of one kind of HTTP(S) response
// (a reference listing, a fetch response) within one context, and
// remembers that a response went past it: go-git does not always wrap the
// read error, so the caller asks the limit instead (see refused).
type bodyLimit struct {
	bytes    int64
	what     string
	exceeded atomic.Bool
}

func (l *bodyLimit) err() error {
	return fmt.Errorf("%w: the %s is larger than %d KiB", ErrUnsafe, l.what, l.bytes>>10)
}

// refused returns the limit's error when a response went past it, else
// err.
func (l *bodyLimit) refused(err error) error {
	if err != nil && l.exceeded.Load() && !errors.Is(err, ErrUnsafe) {
		return fmt.Errorf("%w (%v)", l.err(), err)
	}
	return err
}

type listingLimitKey struct{}
type fetchLimitKey struct{}

// fetchSlack is what a fetch response may hold besides its pack: the
// shallow lines, acknowledgements and progress messages, which go-git
// reads without a limit (a shallow fetch gets one shallow line; a hostile
// server could send millions, each kept in memory).
const fetchSlack = 16 << 20

// init has go-git read HTTP(S) remotes through a transport that bounds
// the responses its request's context carries a limit for. go-git reads
// a reference listing, and a fetch response's shallow lines, whole into
// memory, with no limit of its own: a repository with millions of
// references (pushed tags) or a hostile server would exhaust the agent's
// memory at every poll. Requests without a limit (other users of go-git)
// pass unchanged. go-git wants an *http.Transport only to set TLS or
// proxy options per remote (CABundle, InsecureSkipTLS, ProxyOptions),
// which berth does not use: its proxy comes from the environment, as
// http.DefaultTransport's.
func init() {
	c := githttp.NewClient(&http.Client{Transport: limitedTransport{http.DefaultTransport}})
	client.InstallProtocol("http", c)
	client.InstallProtocol("https", c)
}

type limitedTransport struct{ next http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	key := any(listingLimitKey{})
	if strings.HasSuffix(req.URL.Path, "/git-upload-pack") {
		key = fetchLimitKey{}
	}
	if l, ok := req.Context().Value(key).(*bodyLimit); ok {
		res.Body = &limitedBody{ReadCloser: res.Body, left: l.bytes, limit: l}
	}
	return res, nil
}

// limitedBody fails a read past its limit.
type limitedBody struct {
	io.ReadCloser
	left  int64
	limit *bodyLimit
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the limit: a response of exactly that size has ended.
		var one [1]byte
		if n, err := b.ReadCloser.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		b.limit.exceeded.Store(true)
		return 0, b.limit.err()
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// withFetchLimit returns ctx carrying the response bound of a fetch whose
// pack may take packBytes.
func withFetchLimit(ctx context.Context, packBytes int64) (context.Context, *bodyLimit) {
	l := &bodyLimit{bytes: packBytes + packBytes/64 + fetchSlack, what: "fetch response"}
	return context.WithValue(ctx, fetchLimitKey{}, l), l
}

// withListingLimit returns ctx carrying the advertisement bound of a
// listing of at most maxRefs references (refLineBytes each).
func withListingLimit(ctx context.Context, maxRefs int) (context.Context, *bodyLimit) {
	l := &bodyLimit{bytes: int64(maxRefs) * refLineBytes, what: "reference listing"}
	return context.WithValue(ctx, listingLimitKey{}, l), l
}

// countPeeled counts the peeled entries of a listing ("refs/tags/x^{}",
// the commit of an annotated tag): they name no reference of their own.
func countPeeled(refs []*plumbing.Reference) int {
	n := 0
	for _, r := range refs {
		if strings.HasSuffix(r.Name().String(), "^{}") {
			n++
		}
	}
	return n
}
