package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHGit serves the bare repositories of a GitServer over SSH (git's own
// git-upload-pack behind an in-process golang.org/x/crypto/ssh server),
// accepting one client key.
type SSHGit struct {
	// Addr is host:port.
	Addr string
	// Identity is the client's private key (PEM) and KnownHosts the line
	// that trusts the server, as a credentials Secret holds them.
	Identity   []byte
	KnownHosts []byte
}

// RepoURL returns the ssh:// clone URL of repository name.
func (s *SSHGit) RepoURL(name string) string { return "ssh://git@" + s.Addr + "/" + name + ".git" }

// ServeSSH starts an SSH front for g's repositories that lives until t ends.
func (g *GitServer) ServeSSH(t testing.TB) *SSHGit {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(allowed.Marshal()) {
			return nil, nil
		}
		return nil, errDenied
	}}
	cfg.AddHostKey(hostSigner)
	// Like a real Git host (GitHub offers ECDSA, Ed25519 and RSA), the
	// server also has an ECDSA key, which KnownHosts does not trust: a
	// client must ask for the Ed25519 key that known_hosts names, as one
	// given `ssh-keyscan -t ed25519` output would.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := ssh.NewSignerFromKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AddHostKey(ecSigner)
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go g.serveSSH(c, cfg)
		}
	}()
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	return &SSHGit{
		Addr:       addr,
		Identity:   pem.EncodeToMemory(block),
		KnownHosts: []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostSigner.PublicKey()) + "\n"),
	}
}

type denied struct{}

func (denied) Error() string { return "key not allowed" }

var errDenied = denied{}

func (g *GitServer) serveSSH(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for req := range creqs {
				if req.Type != "exec" || len(req.Payload) < 4 {
					_ = req.Reply(false, nil)
					continue
				}
				n := binary.BigEndian.Uint32(req.Payload)
				cmdline := string(req.Payload[4 : 4+n])
				verb, arg, _ := strings.Cut(cmdline, " ")
				if verb != "git-upload-pack" {
					_ = req.Reply(false, nil)
					return
				}
				repo := filepath.Join(g.Root, filepath.Clean("/"+strings.Trim(arg, "'\"")))
				_ = req.Reply(true, nil)
				cmd := exec.Command("git", "upload-pack", repo) //nolint:noctx // ends with the session
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				status := uint32(0)
				if err := cmd.Run(); err != nil {
					status = 1
				}
				_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
				return
			}
		}()
	}
}
