package catalog

import (
	"bufio"
	"bytes"
	"strings"
)

// parseOSRelease reads os-release(5): KEY=value lines, values optionally
// quoted with shell-style escapes.
func parseOSRelease(content []byte) *OS {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vals[k] = unquote(v)
	}
	if vals["ID"] == "" && vals["NAME"] == "" {
		return nil
	}
	os := &OS{ID: vals["ID"], Name: vals["NAME"], VersionID: vals["VERSION_ID"], Codename: vals["VERSION_CODENAME"]}
	if os.Name == "" {
		os.Name = vals["PRETTY_NAME"]
	}
	return os
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		q := v[0]
		v = v[1 : len(v)-1]
		if q == '"' {
			var b strings.Builder
			for i := 0; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
					i++
				}
				b.WriteByte(v[i])
			}
			v = b.String()
		}
	}
	return v
}
