package application

import "testing"

// A push names its repository the way the Git host writes it; an
// Application may name it another way. Both must meet.
func TestNormalizeURL(t *testing.T) {
	for _, same := range [][]string{
		{"https://github.com/Org/Repo.git", "https://github.com/org/repo", "git@github.com:org/repo.git", "ssh://git@github.com/org/repo.git",
			"ssh://git@github.com:22/org/repo", "https://github.com:443/org/repo.git", "ssh://git@ssh.github.com:443/org/repo.git",
			"https://reader:token@github.com/org/repo.git"},
		{"http://git.example.test/team/gitops.git", "http://git.example.test:80/team/gitops"},
	} {
		for _, u := range same[1:] {
			if NormalizeURL(u) != NormalizeURL(same[0]) {
				t.Errorf("NormalizeURL(%q) = %q, want %q as for %q", u, NormalizeURL(u), NormalizeURL(same[0]), same[0])
			}
		}
	}
	for _, pair := range [][2]string{
		{"http://127.0.0.1:3000/apps.git", "http://127.0.0.1:4000/apps.git"},
		{"https://github.com/org/repo", "https://gitlab.com/org/repo"},
		{"https://git.example.test:8443/x", "https://git.example.test/x"},
	} {
		if NormalizeURL(pair[0]) == NormalizeURL(pair[1]) {
			t.Errorf("NormalizeURL(%q) = NormalizeURL(%q) = %q, want them apart", pair[0], pair[1], NormalizeURL(pair[0]))
		}
	}
}
