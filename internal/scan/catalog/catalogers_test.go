package catalog

import "testing"

func TestKindOf(t *testing.T) {
	tests := map[string]fileKind{
		"etc/os-release":                                       kindOSRelease,
		"usr/lib/os-release":                                   kindOSRelease,
		"var/lib/dpkg/status":                                  kindDpkg,
		"var/lib/dpkg/status.d/libc6":                          kindDpkg,
		"var/lib/dpkg/status.d/libc6.md5sums":                  kindNone,
		"lib/apk/db/installed":                                 kindApk,
		"usr/lib/sysimage/rpm/rpmdb.sqlite":                    kindRpm,
		"app/node_modules/lodash/package.json":                 kindNpm,
		"node_modules/@babel/core/package.json":                kindNpm,
		"a/node_modules/b/node_modules/c/package.json":         kindNpm,
		"app/node_modules/lodash/test/fixture/package.json":    kindNone,
		"app/node_modules/.bin/package.json":                   kindNone,
		"app/package.json":                                     kindNone,
		"usr/lib/python3/site-packages/x-1.dist-info/METADATA": kindPython,
		"usr/lib/python3/site-packages/x-1.egg-info/PKG-INFO":  kindPython,
		"usr/lib/python3/site-packages/x-1.egg-info":           kindPython,
		"opt/app.jar":       kindJava,
		"usr/local/bin/app": kindNone,
	}
	for p, want := range tests {
		if got := kindOf(p); got != want {
			t.Errorf("kindOf(%q) = %v, want %v", p, got, want)
		}
	}
}
