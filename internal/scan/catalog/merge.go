package catalog

import (
	"errors"
	"path"
	"sort"
	"strings"
)

// maxSymlinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinkHops = 40

var errSymlinkLoop = errors.New("too many levels of symbolic links")

// viewEntry is one path of the final filesystem that matters: a symlink or
// a file some cataloger found something in.
type viewEntry struct {
	layer int
	link  string
	isLnk bool
	file  *fileRecord
	// since maps a package (name@version) to the lowest layer from which
	// this path has held it without interruption: the layer that added it.
	since map[string]int
}

// view is the final filesystem, built from the layer records bottom-up.
type view struct {
	entries map[string]*viewEntry
	// dirs are the ancestors of every path ever added, so deleting a
	// directory's contents only scans entries when there can be some.
	dirs map[string]bool
}

func (v *view) removeUnder(dir string) {
	if dir != "" && !v.dirs[dir] {
		return
	}
	for p := range v.entries {
		if dir == "" || strings.HasPrefix(p, dir+"/") {
			delete(v.entries, p)
		}
	}
}

func (v *view) put(p string, e *viewEntry) {
	v.entries[p] = e
	for d := path.Dir(p); d != "." && !v.dirs[d]; d = path.Dir(d) {
		v.dirs[d] = true
	}
}

// apply lays record rec (layer i) over the view: its whiteouts and
// overwrites hide what lower layers wrote, then its own entries land.
func (v *view) apply(i int, rec *layerRecord) {
	prev := map[string]*viewEntry{}
	for _, d := range rec.Opaque {
		v.removeUnder(d)
	}
	for _, w := range rec.Whiteouts {
		delete(v.entries, w)
		v.removeUnder(w)
	}
	for _, e := range rec.Entries {
		if d, ok := strings.CutSuffix(e, "/"); ok {
			// A directory replaces a file or symlink at its path, but not
			// what lies under an existing directory.
			delete(v.entries, d)
			continue
		}
		if old, ok := v.entries[e]; ok {
			prev[e] = old
			delete(v.entries, e)
		}
		v.removeUnder(e) // a file replaces a directory and all under it
	}
	for p, target := range rec.Links {
		v.put(p, &viewEntry{layer: i, link: target, isLnk: true})
	}
	for fi := range rec.Files {
		fr := &rec.Files[fi]
		e := &viewEntry{layer: i, file: fr, since: map[string]int{}}
		old := prev[fr.Path]
		for _, p := range fr.Packages {
			k := p.Name + "@" + p.Version
			e.since[k] = i
			if old != nil && old.file != nil {
				if l, ok := old.since[k]; ok {
					e.since[k] = l
				}
			}
		}
		v.put(fr.Path, e)
	}
}

// resolve follows symlinks in p, component by component, within the image.
func (v *view) resolve(p string) (string, error) {
	parts := strings.Split(p, "/")
	cur := ""
	hops := 0
	for len(parts) > 0 {
		part := parts[0]
		parts = parts[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			if cur == "." || cur == "/" {
				cur = ""
			}
			continue
		}
		next := part
		if cur != "" {
			next = cur + "/" + part
		}
		if e, ok := v.entries[next]; ok && e.isLnk {
			hops++
			if hops > maxSymlinkHops {
				return "", errSymlinkLoop
			}
			t := e.link
			if strings.HasPrefix(t, "/") {
				cur = ""
			}
			parts = append(strings.Split(t, "/"), parts...)
			continue
		}
		cur = next
	}
	return cur, nil
}

// merge builds the inventory from the layer records, bottom layer first.
func merge(recs []*layerRecord, opts Options) *Inventory {
	v := &view{entries: map[string]*viewEntry{}, dirs: map[string]bool{}}
	inv := &Inventory{Image: opts.Image, Digest: opts.Digest, Packages: []Package{}, Secrets: []Secret{}}
	for i, rec := range recs {
		inv.Layers = append(inv.Layers, rec.DiffID)
		inv.Warnings = append(inv.Warnings, rec.Warnings...)
		v.apply(i, rec)
	}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		r, err := v.resolve(p)
		if err != nil {
			inv.Warnings = append(inv.Warnings, "/"+p+": "+err.Error())
			continue
		}
		if e, ok := v.entries[r]; ok && e.file != nil && e.file.OS != nil {
			os := *e.file.OS
			inv.OS = &os
			break
		}
	}
	for _, e := range v.entries {
		if e.file == nil {
			continue
		}
		for _, p := range e.file.Packages {
			l, ok := e.since[p.Name+"@"+p.Version]
			if !ok {
				l = e.layer
			}
			p.Layer = recs[l].DiffID
			fillEcosystem(&p, inv.OS)
			inv.Packages = append(inv.Packages, p)
		}
		for _, s := range e.file.Secrets {
			s.Layer = recs[e.layer].DiffID
			inv.Secrets = append(inv.Secrets, s)
		}
	}
	sort.Slice(inv.Packages, func(i, j int) bool {
		a, b := inv.Packages[i], inv.Packages[j]
		if a.Ecosystem != b.Ecosystem {
			return a.Ecosystem < b.Ecosystem
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Path < b.Path
	})
	sort.Slice(inv.Secrets, func(i, j int) bool {
		a, b := inv.Secrets[i], inv.Secrets[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.RuleID < b.RuleID
	})
	return inv
}
