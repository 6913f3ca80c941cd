package vulndb

import (
	"testing"
)

// FuzzParseEntry feeds arbitrary bytes to the record parser and the
// conversion into stored advisories: hostile records must give an error or
// a record, never a panic.
func FuzzParseEntry(f *testing.F) {
	f.Add([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}],"ecosystem_specific":{"imports":[{"goos":["windows"]}]}}]}`))
	f.Add([]byte(`{"id":"Y","affected":[{"package":{"ecosystem":"Debian:12","name":"p"},"versions":["1"],"ecosystem_specific":{"urgency":"high"}}],"database_specific":{"severity":7}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":"Z","withdrawn":"not a time"}`))
	f.Fuzz(func(_ *testing.T, data []byte) {
		e, err := parseEntry(data)
		if err != nil {
			return
		}
		_ = advisoriesFrom(e)
	})
}

func TestGoPlatforms(t *testing.T) {
	cases := []struct {
		raw        string
		goos, arch int
	}{
		{`{"imports":[{"path":"os","goos":["windows"]},{"path":"x","goos":["windows","plan9"]}]}`, 2, 0},
		{`{"imports":[{"path":"os","goos":["windows"]},{"path":"net"}]}`, 0, 0},
		{`{"imports":[{"path":"crypto","goarch":["arm64"]}]}`, 0, 1},
		{`{"imports":"nonsense"}`, 0, 0},
		{``, 0, 0},
	}
	for _, c := range cases {
		goos, goarch := goPlatforms([]byte(c.raw))
		if len(goos) != c.goos || len(goarch) != c.arch {
			t.Errorf("%s: goos %v goarch %v", c.raw, goos, goarch)
		}
	}
}
