package source

import "testing"

func TestSSHHostPort(t *testing.T) {
	for url, want := range map[string]string{
		"ssh://git@github.com/org/repo.git":         "github.com:22",
		"ssh://git@ssh.github.com:443/org/repo.git": "ssh.github.com:443",
		"ssh://github.com/org/repo.git":             "github.com:22",
		"git@github.com:org/repo.git":               "github.com:22",
		"ssh://git@[2001:db8::1]:2222/org/repo.git": "[2001:db8::1]:2222",
		"ssh://git@[2001:db8::1]/org/repo.git":      "[2001:db8::1]:22",
		"deploy@git.example.test:team/gitops.git":   "git.example.test:22",
		"no-host-here": "",
	} {
		if got := sshHostPort(url); got != want {
			t.Errorf("sshHostPort(%q) = %q, want %q", url, got, want)
		}
	}
}
