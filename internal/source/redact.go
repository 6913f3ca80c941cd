package source

import (
	neturl "net/url"
	"strings"
)

// Redact returns rawURL without its user information (the token or
// password of https://user:token@host/repo), for messages, logs and status.
func Redact(rawURL string) string {
	u, err := neturl.Parse(rawURL)
	if err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	// A URL that does not parse (a password with a bare %), or parses
	// with the password read as host or path (one with a bare /, # or ?),
	// still has its credentials cut: everything between the scheme and
	// the last @.
	if i, j := strings.Index(rawURL, "://"), strings.LastIndex(rawURL, "@"); i >= 0 && j > i+3 {
		return rawURL[:i+3] + "***" + rawURL[j:]
	}
	return rawURL
}

// credentials returns the user name and password of rawURL, read by hand
// when the URL parses without them (see Redact).
func credentials(rawURL string) (user, password string, ok bool) {
	if u, err := neturl.Parse(rawURL); err == nil && u.User != nil {
		p, _ := u.User.Password()
		return u.User.Username(), p, true
	}
	i, j := strings.Index(rawURL, "://"), strings.LastIndex(rawURL, "@")
	if i < 0 || j <= i+3 {
		return "", "", false
	}
	user, password, _ = strings.Cut(rawURL[i+3:j], ":")
	return user, password, true
}

// redactedError hides the credentials of a repository URL in an error's
// text and keeps what it wraps.
type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact removes the credentials of rawURL from err's text: the URL
// itself, its password and, when long enough to be a token, its user name
// (Git hosts take a token there too), plain or URL-escaped.
func redact(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	user, password, ok := credentials(rawURL)
	if !ok {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), rawURL, Redact(rawURL))
	secrets := []string{}
	if password != "" {
		secrets = append(secrets, password)
	}
	if len(user) >= 12 {
		secrets = append(secrets, user)
	}
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "***")
		msg = strings.ReplaceAll(msg, neturl.QueryEscape(s), "***")
		msg = strings.ReplaceAll(msg, neturl.PathEscape(s), "***")
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{err: err, msg: msg}
}
