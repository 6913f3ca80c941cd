package gitrevert

import "testing"

func TestCleanPath(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"", "", ""}, {".", "", ""}, {"/", "", ""}, {"./deploy/shop/", "deploy/shop", ""},
		{"deploy//shop", "deploy/shop", ""}, {"/deploy", "deploy", ""}, {"../x", "", "leaves"}, {"a/../..", "", "leaves"},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := cleanPath(c.in)
			if (err != nil) != (c.err != "") || got != c.want {
				t.Errorf("cleanPath(%q) = %q, %v; want %q, error %q", c.in, got, err, c.want, c.err)
			}
		})
	}
}

func TestPublicURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://user:tok@git.example/r.git", "https://git.example/r.git"},
		{"https://git.example/r.git", "https://git.example/r.git"},
		{"ssh://git:pw@git.example/r.git", "ssh://git@git.example/r.git"},
		{"git@git.example:r.git", "git@git.example:r.git"},
	} {
		if got := publicURL(c.in); got != c.want {
			t.Errorf("publicURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
