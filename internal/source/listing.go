package source

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// refLineBytes is what one advertised reference may take on average in a
// listing read over HTTP(S): a pkt-line's length, the hash, the name.
const refLineBytes = 256

// listingLimitKey carries, in a listing's context, how many bytes of
// reference advertisement may be read over HTTP(S).
type listingLimitKey struct{}

// init has go-git read HTTP(S) remotes through a transport
// that bounds a reference advertisement to the limit its context carries.
// go-git reads the whole advertisement into memory, with no limit of its
// own: a repository with millions of references (pushed tags, or a
// hostile server) would exhaust the agent's memory at every poll.
// Requests without the limit (other users of go-git) pass unchanged.
// go-git wants an *http.Transport only to set TLS or proxy options per
// remote (CABundle, InsecureSkipTLS, ProxyOptions), which berth does not
// use: its proxy comes from the environment, as http.DefaultTransport's.
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
	limit, ok := req.Context().Value(listingLimitKey{}).(int64)
	if ok && strings.HasSuffix(req.URL.Path, "/info/refs") {
		res.Body = &limitedBody{ReadCloser: res.Body, left: limit, limit: limit}
	}
	return res, nil
}

// limitedBody fails a read past its limit.
type limitedBody struct {
	io.ReadCloser
	left, limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the limit: a listing of exactly that size has ended.
		var one [1]byte
		if n, err := b.ReadCloser.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: the reference listing is larger than %d KiB", ErrUnsafe, b.limit>>10)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// withListingLimit returns ctx carrying the advertisement bound of a
// listing of at most maxRefs references.
func withListingLimit(ctx context.Context, maxRefs int) context.Context {
	return context.WithValue(ctx, listingLimitKey{}, int64(maxRefs)*refLineBytes)
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
