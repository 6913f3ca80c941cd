package catalog

import "testing"

func TestOSEcosystem(t *testing.T) {
	tests := []struct {
		cataloger, id, version, want string
	}{
		{"dpkg", "debian", "12", "Debian:12"},
		{"dpkg", "ubuntu", "22.04", "Ubuntu:22.04:LTS"},
		{"dpkg", "ubuntu", "24.10", "Ubuntu:24.10"},
		{"dpkg", "", "", "Debian"},
		{"apk", "alpine", "3.20.3", "Alpine:v3.20"},
		{"apk", "wolfi", "20230201", "Wolfi"},
		{"rpm", "rhel", "9.4", "Red Hat"},
		{"rpm", "rocky", "9.3", "Rocky Linux:9"},
		{"rpm", "almalinux", "8.10", "AlmaLinux:8"},
		{"rpm", "mariner", "2.0", "Mariner:2.0"},
		{"npm", "debian", "12", ""},
	}
	for _, tc := range tests {
		var os *OS
		if tc.id != "" {
			os = &OS{ID: tc.id, VersionID: tc.version}
		}
		if got := osEcosystem(tc.cataloger, os); got != tc.want {
			t.Errorf("osEcosystem(%s, %s %s) = %q, want %q", tc.cataloger, tc.id, tc.version, got, tc.want)
		}
	}
}

func TestPURL(t *testing.T) {
	deb := &OS{ID: "debian", VersionID: "12"}
	tests := []struct {
		p    Package
		os   *OS
		want string
	}{
		{Package{Name: "libc6", Version: "2.36-9+deb12u4", Cataloger: "dpkg"}, deb, "pkg:deb/debian/libc6@2.36-9+deb12u4?distro=debian-12"},
		{Package{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Cataloger: "dpkg"}, deb, "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?distro=debian-12"},
		{Package{Name: "golang.org/x/text", Version: "0.3.5", Cataloger: "gobinary"}, nil, "pkg:golang/golang.org/x/text@v0.3.5"},
		{Package{Name: "@babel/core", Version: "7.0.0", Cataloger: "npm"}, nil, "pkg:npm/%40babel/core@7.0.0"},
		{Package{Name: "PyYAML", Version: "6.0", Cataloger: "python"}, nil, "pkg:pypi/pyyaml@6.0"},
		{Package{Name: "org.slf4j:slf4j-nop", Version: "1.7.32", Cataloger: "java"}, nil, "pkg:maven/org.slf4j/slf4j-nop@1.7.32"},
	}
	for _, tc := range tests {
		if got := purl(&tc.p, tc.os); got != tc.want {
			t.Errorf("purl(%s) = %q, want %q", tc.p.Name, got, tc.want)
		}
	}
}
