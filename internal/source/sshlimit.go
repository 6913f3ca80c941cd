package source

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/net/proxy"
)

// go-git reads an SSH remote's reference listing, and a fetch response's
// shallow lines, whole into memory, as it does over HTTP(S) (see
// limitedTransport), and its SSH transport has no hook for the response
// body. It does dial through a proxy named by a URL, whose scheme a
// package may register: berth registers one that dials directly (or
// through the environment's proxy, as go-git would) and counts what the
// connection reads, so a hostile server streaming references for ever is
// cut off at the operation's bound.
const boundedScheme = "berth-bounded"

// sshSlack is what an SSH connection may read besides the Git protocol:
// the handshake, key exchange and channel framing.
const sshSlack = 64 << 10

var (
	sshLimits  sync.Map // id -> *bodyLimit
	sshLimitID atomic.Uint64
)

func init() {
	proxy.RegisterDialerType(boundedScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		l, ok := sshLimits.Load(u.Host)
		if !ok {
			return nil, fmt.Errorf("no read bound registered as %q", u.Host)
		}
		return boundedDialer{l.(*bodyLimit)}, nil
	})
}

// sshBound returns the proxy options under which go-git reads an SSH
// remote at rawURL through limit, and a function to call once the
// operation ended. For other remotes it returns no options: their bound
// is limitedTransport's.
func sshBound(rawURL string, limit *bodyLimit) (transport.ProxyOptions, func()) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil || ep.Protocol != "ssh" {
		return transport.ProxyOptions{}, func() {}
	}
	id := strconv.FormatUint(sshLimitID.Add(1), 10)
	sshLimits.Store(id, limit)
	return transport.ProxyOptions{URL: boundedScheme + "://" + id}, func() { sshLimits.Delete(id) }
}

type boundedDialer struct{ limit *bodyLimit }

func (d boundedDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d boundedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := proxy.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &boundedConn{Conn: c, body: &limitedBody{ReadCloser: c, left: d.limit.bytes + sshSlack, limit: d.limit}}, nil
}

// boundedConn reads its connection through a limitedBody, as an HTTP(S)
// response is read. The SSH client reads its connection from one
// goroutine.
type boundedConn struct {
	net.Conn
	body *limitedBody
}

func (c *boundedConn) Read(p []byte) (int, error) { return c.body.Read(p) }
