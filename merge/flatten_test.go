package merge

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The reference flattener: applies layers to an in-memory filesystem, the
// plain way (a map of paths, subtrees deleted by prefix). It shares no code
// with the merger.

// meta is a file's inode: hard links share the pointer.
type meta struct {
	typ      byte
	mode     int64
	uid, gid int
	mtime    time.Time
	linkname string // symlinks
	devmajor int64
	devminor int64
	pax      string // non-basic PAX records (xattrs and others), sorted
	sum      [32]byte
	size     int64
}

func (m *meta) String() string {
	return fmt.Sprintf("typ=%c mode=%o uid=%d gid=%d mtime=%s link=%q dev=%d:%d pax=%q size=%d sum=%x",
		m.typ, m.mode, m.uid, m.gid, m.mtime.Format(time.RFC3339Nano), m.linkname, m.devmajor, m.devminor, m.pax, m.size, m.sum[:4])
}

type fsys map[string]*meta

// semantics of applying a layer
type semantics int

const (
	// specSemantics: whiteouts and opaque markers hide lower layers only,
	// wherever they are in the stream (OCI image spec).
	specSemantics semantics = iota
	// inOrder: entries applied one by one like docker's unpacker: a
	// whiteout removes the path even if this layer wrote it before; an
	// opaque marker spares paths this layer already wrote; missing parents
	// are created.
	inOrder
)

type tarEntry struct {
	hdr  *tar.Header
	meta *meta
}

func readEntries(t testing.TB, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		h := sha256.New()
		n, err := io.Copy(h, tr)
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		var pax []string
		for k, v := range hdr.PAXRecords {
			switch k {
			case "path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime":
			default:
				pax = append(pax, k+"="+v)
			}
		}
		slices.Sort(pax)
		m := &meta{typ: hdr.Typeflag, mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime,
			devmajor: hdr.Devmajor, devminor: hdr.Devminor, pax: strings.Join(pax, ","), size: n}
		if m.typ == tar.TypeRegA {
			m.typ = tar.TypeReg
		}
		if m.typ == tar.TypeSymlink {
			m.linkname = hdr.Linkname
		}
		copy(m.sum[:], h.Sum(nil))
		out = append(out, tarEntry{hdr, m})
	}
}

func clean(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

func under(p, dir string) bool { return dir == "" || p == dir || strings.HasPrefix(p, dir+"/") }

// applyLayer applies one layer's entries to fs.
func (fs fsys) applyLayer(t testing.TB, entries []tarEntry, sem semantics) {
	t.Helper()
	type wh struct {
		opaque bool
		p      string
	}
	whiteout := func(e tarEntry) (wh, bool) {
		p := clean(e.hdr.Name)
		base, dir := path.Base(p), path.Dir(p)
		if dir == "." {
			dir = ""
		}
		if base == ".wh..wh..opq" {
			return wh{true, dir}, true
		}
		if strings.HasPrefix(base, ".wh.") {
			return wh{false, path.Join(dir, strings.TrimPrefix(base, ".wh."))}, true
		}
		return wh{}, false
	}
	unpacked := map[string]bool{}
	hide := func(w wh) {
		if w.opaque {
			for k := range fs {
				if k != w.p && under(k, w.p) && !unpacked[k] {
					delete(fs, k)
				}
			}
			return
		}
		for k := range fs {
			if under(k, w.p) {
				delete(fs, k)
			}
		}
	}
	if sem == specSemantics {
		for _, e := range entries {
			if w, ok := whiteout(e); ok {
				hide(w)
			}
		}
	}
	for _, e := range entries {
		p := clean(e.hdr.Name)
		w, isWhiteout := whiteout(e)
		if isWhiteout && sem == specSemantics {
			continue
		}
		if p == "" {
			continue
		}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			m, ok := fs[d]
			switch {
			case ok && m.typ != tar.TypeDir:
				t.Fatalf("%s: parent %s is not a directory", p, d)
			case !ok && sem == specSemantics:
				t.Fatalf("%s: parent %s missing", p, d)
			case !ok:
				fs[d] = &meta{typ: tar.TypeDir, mode: 0o755}
			}
		}
		if isWhiteout {
			hide(w)
			continue
		}
		unpacked[p] = true
		old, exists := fs[p]
		m := e.meta
		if e.hdr.Typeflag == tar.TypeLink {
			target, ok := fs[clean(e.hdr.Linkname)]
			if !ok || target.typ == tar.TypeDir {
				t.Fatalf("%s: hard link target %s missing or a directory", p, e.hdr.Linkname)
			}
			m = target
		}
		if exists && !(old.typ == tar.TypeDir && m.typ == tar.TypeDir) {
			for k := range fs {
				if under(k, p) {
					delete(fs, k)
				}
			}
		}
		fs[p] = m
	}
}

func flattenLayers(t testing.TB, layers []v1.Layer, sem semantics) fsys {
	t.Helper()
	fs := fsys{}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		entries := readEntries(t, rc)
		rc.Close()
		fs.applyLayer(t, entries, sem)
	}
	return fs
}

func flatten(t testing.TB, img v1.Image, sem semantics) fsys {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return flattenLayers(t, layers, sem)
}

// diffFS describes how got differs from want: per path metadata and content,
// and which paths share an inode (hard links).
func diffFS(want, got fsys) string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[p]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("missing %q: %v", p, want[p]))
		case *g != *want[p]:
			out = append(out, fmt.Sprintf("%q:\n  want %v\n  got  %v", p, want[p], g))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			out = append(out, fmt.Sprintf("extra %q: %v", p, got[p]))
		}
	}
	if w, g := links(want), links(got); w != g {
		out = append(out, fmt.Sprintf("hard links:\n  want %s\n  got  %s", w, g))
	}
	return strings.Join(out, "\n")
}

// links lists the groups of paths that share an inode.
func links(fs fsys) string {
	byMeta := map[*meta][]string{}
	for p, m := range fs {
		if m.typ != tar.TypeDir {
			byMeta[m] = append(byMeta[m], p)
		}
	}
	var groups []string
	for _, ps := range byMeta {
		if len(ps) > 1 {
			slices.Sort(ps)
			groups = append(groups, strings.Join(ps, "="))
		}
	}
	slices.Sort(groups)
	return strings.Join(groups, " ")
}
