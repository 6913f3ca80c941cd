package gitrevert

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Environment variables read when the matching Credentials field is empty.
const (
	// EnvUsername holds the HTTPS user name.
	EnvUsername = "BERTH_GIT_USERNAME"
	// EnvPassword holds the HTTPS password or access token.
	EnvPassword = "BERTH_GIT_PASSWORD" //nolint:gosec // the variable's name, not a credential
)

// Credentials are the user's own Git credentials, with write access to the
// branch. They are never the agent's: those are read-only by design.
type Credentials struct {
	// Username for HTTPS; default $BERTH_GIT_USERNAME, then "git" when a
	// password is given (hosts that take tokens ignore the name).
	Username string
	// PasswordFile holds the HTTPS password or token (one trailing newline
	// is ignored); default $BERTH_GIT_PASSWORD.
	PasswordFile string
	// SSHKeyFile is a private key for ssh:// and scp-like URLs; without it
	// the SSH agent ($SSH_AUTH_SOCK) is asked.
	SSHKeyFile string
	// KnownHostsFile verifies the SSH server; default $SSH_KNOWN_HOSTS,
	// then ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts.
	KnownHostsFile string
}

// AuthError is returned when the Git server refuses the credentials. It
// names the URL and user, never the password.
type AuthError struct {
	URL  string
	User string
	Err  error
}

func (e *AuthError) Error() string {
	who := "without credentials"
	if e.User != "" {
		who = fmt.Sprintf("as %q", e.User)
	}
	// The sentinel only: the rest is the server's response body.
	why := "access denied"
	switch {
	case errors.Is(e.Err, transport.ErrAuthenticationRequired):
		why = transport.ErrAuthenticationRequired.Error()
	case errors.Is(e.Err, transport.ErrAuthorizationFailed):
		why = transport.ErrAuthorizationFailed.Error()
	}
	return fmt.Sprintf("%s refused access %s (%s): give credentials with write access to the branch (--git-username and --git-password-file, $%s and $%s, or --git-ssh-key)",
		e.URL, who, why, EnvUsername, EnvPassword)
}

func (e *AuthError) Unwrap() error { return e.Err }

// isAuth reports whether err is the server refusing the credentials.
func isAuth(err error) bool {
	return errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) ||
		strings.Contains(err.Error(), "unable to authenticate") // golang.org/x/crypto/ssh
}

// isSSH reports whether u is an ssh:// or scp-like (user@host:path) URL.
func isSSH(u string) bool {
	return strings.HasPrefix(u, "ssh://") || (!strings.Contains(u, "://") && strings.Contains(u, ":"))
}

// publicURL returns u without a password, and without any user information
// for HTTP(S), so neither the agent's embedded credentials are used nor a
// secret is shown.
func publicURL(u string) string {
	if !strings.Contains(u, "://") {
		return u // scp-like: user@host:path carries no secret
	}
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	if p.Scheme == "ssh" {
		p.User = url.User(p.User.Username())
	} else {
		p.User = nil
	}
	return p.String()
}

// method returns the go-git auth method for u and the user name it presents.
func (c Credentials) method(u string) (transport.AuthMethod, string, error) {
	if isSSH(u) {
		return c.sshMethod(u)
	}
	user := c.Username
	if user == "" {
		user = os.Getenv(EnvUsername)
	}
	pass := os.Getenv(EnvPassword)
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, "", fmt.Errorf("reading the Git password file: %w", err)
		}
		pass = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if user == "" && pass == "" {
		return nil, "", nil
	}
	if user == "" {
		user = "git"
	}
	return &githttp.BasicAuth{Username: user, Password: pass}, user, nil
}

func (c Credentials) sshMethod(u string) (transport.AuthMethod, string, error) {
	user := gitssh.DefaultUsername
	if ep, err := transport.NewEndpoint(u); err == nil && ep.User != "" {
		user = ep.User
	}
	var files []string
	if c.KnownHostsFile != "" {
		files = append(files, c.KnownHostsFile)
	}
	hosts, err := gitssh.NewKnownHostsCallback(files...)
	if err != nil {
		return nil, "", fmt.Errorf("reading known hosts: %w", err)
	}
	if c.SSHKeyFile == "" {
		a, err := gitssh.NewSSHAgentAuth(user)
		if err != nil {
			return nil, "", fmt.Errorf("no --git-ssh-key given and no SSH agent: %w", err)
		}
		a.HostKeyCallback = hosts
		return a, user, nil
	}
	// Keys with a passphrase are for the SSH agent: no passphrase flag.
	k, err := gitssh.NewPublicKeysFromFile(user, c.SSHKeyFile, "")
	if err != nil {
		return nil, "", fmt.Errorf("reading SSH key %s: %w", c.SSHKeyFile, err)
	}
	k.HostKeyCallback = hosts
	return k, user, nil
}
