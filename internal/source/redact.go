package source

import (
	neturl "net/url"
	"strings"
)

// Redact returns rawURL without its user information (the token or
// password of https://user:token@host/repo), for messages, logs and status.
func Redact(rawURL string) string {
	u, err := neturl.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	u.User = nil
	return u.String()
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
	u, perr := neturl.Parse(rawURL)
	if perr != nil || u.User == nil {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), rawURL, Redact(rawURL))
	secrets := []string{}
	if p, ok := u.User.Password(); ok && p != "" {
		secrets = append(secrets, p)
	}
	if n := u.User.Username(); len(n) >= 12 {
		secrets = append(secrets, n)
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
