package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Auth holds credentials for a repository, usually read from a Secret with
// keys username/password, token, or identity/known_hosts.
type Auth struct {
	Username   string
	Password   string
	Token      string
	SSHKey     []byte
	KnownHosts []byte
}

// AuthFromSecretData builds Auth from a Secret's data.
func AuthFromSecretData(data map[string][]byte) *Auth {
	return &Auth{
		Username:   string(data["username"]),
		Password:   string(data["password"]),
		Token:      string(data["token"]),
		SSHKey:     data["identity"],
		KnownHosts: data["known_hosts"],
	}
}

// method returns the go-git auth method for url and a cleanup function.
func (a *Auth) method(url string) (transport.AuthMethod, func(), error) {
	noop := func() {}
	if a == nil {
		return nil, noop, nil
	}
	isSSH := strings.HasPrefix(url, "ssh://") || (strings.Contains(url, "@") && !strings.Contains(url, "://"))
	if isSSH {
		if len(a.SSHKey) == 0 {
			return nil, noop, errors.New("ssh repository needs an `identity` key in the credentials Secret")
		}
		user := "git"
		if a.Username != "" {
			user = a.Username
		}
		pk, err := gitssh.NewPublicKeys(user, a.SSHKey, a.Password)
		if err != nil {
			return nil, noop, fmt.Errorf("parsing ssh identity: %w", err)
		}
		if len(a.KnownHosts) == 0 {
			return nil, noop, errors.New("ssh repository needs `known_hosts` in the credentials Secret")
		}
		f, err := os.CreateTemp("", "berth-known-hosts-")
		if err != nil {
			return nil, noop, fmt.Errorf("writing known_hosts: %w", err)
		}
		cleanup := func() { _ = os.Remove(f.Name()) }
		if _, err := f.Write(a.KnownHosts); err != nil {
			_ = f.Close()
			cleanup()
			return nil, noop, fmt.Errorf("writing known_hosts: %w", err)
		}
		_ = f.Close()
		db, err := gitssh.NewKnownHostsDb(f.Name())
		if err != nil {
			cleanup()
			return nil, noop, fmt.Errorf("parsing known_hosts: %w", err)
		}
		pk.HostKeyCallback = db.HostKeyCallback()
		// Ask the server for a key of a type known_hosts holds for it: by
		// default the client asks for ECDSA first, and a known_hosts with
		// only the host's Ed25519 key (`ssh-keyscan -t ed25519`) would fail
		// as a "key mismatch" against a host that has both (go-git#411).
		if hp := sshHostPort(url); hp != "" {
			pk.HostKeyAlgorithms = db.HostKeyAlgorithms(hp)
		}
		return pk, cleanup, nil
	}
	switch {
	case a.Token != "":
		user := a.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: a.Token}, noop, nil
	case a.Username != "" || a.Password != "":
		return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, noop, nil
	}
	return nil, noop, nil
}

// key identifies the credentials without revealing them, so listings made
// with different credentials are not shared. It hashes what the Secret
// holds (an SSH method is a new value on every call, so it cannot be the
// key).
func (a *Auth) key() string {
	if a == nil {
		return "anonymous"
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(a.Username), []byte(a.Password), []byte(a.Token), a.SSHKey, a.KnownHosts} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// sshHostPort returns the host:port an SSH repository URL (ssh://user@host:port/path,
// or user@host:path) connects to, port 22 when none is given; "" when it
// cannot tell.
func sshHostPort(url string) string {
	var host string
	if rest, ok := strings.CutPrefix(url, "ssh://"); ok {
		hostPort, _, _ := strings.Cut(rest, "/")
		if i := strings.LastIndex(hostPort, "@"); i >= 0 {
			hostPort = hostPort[i+1:]
		}
		if h, p, err := net.SplitHostPort(hostPort); err == nil {
			return net.JoinHostPort(h, p)
		}
		host = strings.Trim(hostPort, "[]")
	} else {
		userHost, _, ok := strings.Cut(url, ":")
		if !ok {
			return ""
		}
		host = userHost
		if i := strings.LastIndex(host, "@"); i >= 0 {
			host = host[i+1:]
		}
	}
	if host == "" {
		return ""
	}
	return net.JoinHostPort(host, "22")
}
