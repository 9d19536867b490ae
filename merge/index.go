package merge

import (
	"archive/tar"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Whiteout names (OCI image spec, "Representing Changes").
const (
	whPrefix = ".wh."
	whMeta   = ".wh..wh."     // AUFS metadata; dropped, like docker does
	whOpaque = ".wh..wh..opq" // hides everything below its directory
	rootName = "./"           // name of the root directory entry
	noLayer  = int32(-1)      // ref.layer of "no entry"
)

// ref is the position of a tar entry in a group: layer within the group and
// entry number within that layer's stream.
type ref struct{ layer, ord int32 }

var noRef = ref{noLayer, noLayer}

func (r ref) ok() bool { return r.layer >= 0 }

// node is one path of the group's filesystem while pass 1 applies the
// group's layers in order. Only paths the group touches have nodes; content
// of lower layers (below the group) is implied.
type node struct {
	name   string
	parent *node
	kids   map[string]*node

	win    ref         // entry that provides this path; !ok: implicit dir or deleted
	dir    bool        // present as a directory (entry or implied parent)
	link   bool        // win is a hard link
	gone   bool        // deleted (whiteout); absent from the merged layer
	opaque bool        // lower content below this path is hidden
	hdr    *tar.Header // winning directory header: written as soon as a child needs it
	ino    *inode      // identity of win's content, once a hard link refers to it

	// Set by finish, used by pass 2.
	marker  bool // write a whiteout (gone) or an opaque marker (dir) for this path
	emitted bool // directory header written
}

func (n *node) child(name string) *node {
	if n.kids == nil {
		n.kids = map[string]*node{}
	}
	k := &node{name: name, parent: n, win: noRef, dir: true}
	n.kids[name] = k
	return k
}

// path returns n's normalized path ("" for the root).
func (n *node) path() string {
	var parts []string
	for a := n; a.parent != nil; a = a.parent {
		parts = append(parts, a.name)
	}
	slices.Reverse(parts)
	return strings.Join(parts, "/")
}

// inode is the content a hard link points to: an entry of the group (src),
// or a path below the group (src !ok).
type inode struct {
	src   ref
	path  string
	links []hardlink // in stream order
}

type hardlink struct {
	path string
	at   ref
}

// entry is what pass 1 keeps of a tar header.
type entry struct {
	kind entryKind
	path string // normalized; for whiteouts the deleted path, for opaque markers the directory
	ord  int32
	typ  byte
	link string      // normalized hard link target
	hdr  *tar.Header // directories only
}

type entryKind uint8

const (
	kindFile entryKind = iota
	kindWhiteout
	kindOpaque
	kindSkip
)

// normalize turns a tar name into a clean relative path ("" is the root).
func normalize(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

func classify(hdr *tar.Header, ord int32) entry {
	p := normalize(hdr.Name)
	e := entry{path: p, ord: ord, typ: hdr.Typeflag}
	base, dir := path.Base(p), path.Dir(p)
	if dir == "." {
		dir = ""
	}
	switch {
	case strings.Contains("/"+p, "/"+whMeta) && base != whOpaque:
		e.kind = kindSkip
	case base == whOpaque:
		e.kind, e.path = kindOpaque, dir
	case strings.HasPrefix(base, whPrefix):
		e.kind, e.path = kindWhiteout, path.Join(dir, base[len(whPrefix):])
		if name := base[len(whPrefix):]; name == "" || name == "." || name == ".." {
			e.kind = kindSkip
		}
	case hdr.Typeflag == tar.TypeXGlobalHeader:
		e.kind = kindSkip
	case hdr.Typeflag == tar.TypeLink:
		e.link = normalize(hdr.Linkname)
	case hdr.Typeflag == tar.TypeDir:
		h := *hdr
		e.hdr = &h
	}
	return e
}

// index is pass 1: the group's layers applied in order to a tree of the paths
// they touch, remembering which entry wins each path.
type index struct {
	root   *node
	inodes []*inode
	counts []int32 // entries per layer
}

func newIndex() *index {
	return &index{root: &node{win: noRef, dir: true}}
}

// apply adds layer j. Whiteouts and opaque markers hide lower layers only, so
// they go first, whatever their position in the stream.
func (x *index) apply(j int32, entries []entry) error {
	for _, e := range entries {
		switch e.kind {
		case kindWhiteout:
			x.whiteout(e.path)
		case kindOpaque:
			x.opaqueDir(e.path)
		}
	}
	for _, e := range entries {
		if e.kind == kindFile {
			if err := x.put(ref{j, e.ord}, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func split(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// existing walks to the directory that holds p, creating nodes for parents
// that only lower layers provide. nil: a parent is deleted or not a directory,
// so p cannot exist.
func (x *index) existing(parts []string) *node {
	n := x.root
	for _, c := range parts {
		k := n.kids[c]
		switch {
		case k == nil:
			k = n.child(c)
		case k.gone || !k.dir:
			return nil
		}
		n = k
	}
	return n
}

func (x *index) whiteout(p string) {
	parts := split(p)
	if len(parts) == 0 {
		return
	}
	parent := x.existing(parts[:len(parts)-1])
	if parent == nil {
		return
	}
	last := parts[len(parts)-1]
	k := parent.kids[last]
	if k == nil {
		k = parent.child(last)
	}
	*k = node{name: k.name, parent: k.parent, win: noRef, gone: true, opaque: true}
}

func (x *index) opaqueDir(p string) {
	d := x.existing(split(p))
	if d == nil {
		return // the directory entry of this layer recreates it, hiding lower content
	}
	d.kids = nil
	d.opaque = true
}

// put applies a non-whiteout entry at r.
func (x *index) put(r ref, e entry) error {
	var ino *inode
	if e.typ == tar.TypeLink {
		var err error
		if ino, err = x.resolve(e.link); err != nil {
			return fmt.Errorf("hard link %q -> %q: %w", e.path, e.link, err)
		}
		ino.links = append(ino.links, hardlink{e.path, r})
	}
	parts := split(e.path)
	if len(parts) == 0 { // the root directory
		if e.typ == tar.TypeDir {
			x.root.win, x.root.hdr = r, e.hdr
		}
		return nil
	}
	n := x.root
	for _, c := range parts[:len(parts)-1] {
		k := n.kids[c]
		switch {
		case k == nil:
			k = n.child(c)
		case k.gone || !k.dir: // revived as an implied directory; lower content stays hidden
			k.win, k.dir, k.gone, k.link, k.hdr, k.ino = noRef, true, false, false, nil, nil
		}
		n = k
	}
	last := parts[len(parts)-1]
	k := n.kids[last]
	isNew := k == nil
	if isNew {
		k = n.child(last)
	}
	if e.typ == tar.TypeDir {
		if !isNew && (k.gone || !k.dir) { // replaces a file or a deleted path: lower content stays hidden
			k.kids, k.gone, k.link = nil, false, false
		}
		k.dir, k.win, k.hdr, k.ino = true, r, e.hdr, nil
		return nil
	}
	// A non-directory replaces whatever was there, lower content included:
	// if a directory comes back later, it must not show lower content.
	k.kids, k.dir, k.gone, k.hdr, k.opaque = nil, false, false, nil, true
	k.win, k.link, k.ino = r, ino != nil, ino
	return nil
}

// resolve finds what a hard link to p points to right now.
func (x *index) resolve(p string) (*inode, error) {
	n, hidden := x.root, false
	for _, c := range split(p) {
		if !n.dir {
			return nil, fmt.Errorf("target's parent %q is not a directory", n.path())
		}
		hidden = hidden || n.opaque
		k := n.kids[c]
		if k == nil {
			if hidden {
				return nil, fmt.Errorf("target was deleted earlier in the merged layers")
			}
			ino := &inode{src: noRef, path: p}
			x.inodes = append(x.inodes, ino)
			return ino, nil
		}
		if k.gone {
			return nil, fmt.Errorf("target was deleted earlier in the merged layers")
		}
		n = k
	}
	if n.ino == nil {
		n.ino = &inode{src: n.win, path: p}
		x.inodes = append(x.inodes, n.ino)
	}
	return n.ino, nil
}

// lookup returns the node of p, or nil.
func (x *index) lookup(p string) *node {
	n := x.root
	for _, c := range split(p) {
		if n = n.kids[c]; n == nil {
			return nil
		}
	}
	return n
}

// lowerVisible reports whether lower content at p shows through the group.
func (x *index) lowerVisible(p string) bool {
	n := x.root
	for _, c := range split(p) {
		if n.opaque || n.gone || !n.dir {
			return false
		}
		k := n.kids[c]
		if k == nil {
			return true
		}
		n = k
	}
	return !n.gone && !n.win.ok()
}

// action says what pass 2 writes for one stream entry.
type action struct {
	node     *node  // the path the entry is written as (after its parents)
	linkname string // hard link target; "" keeps the entry's own type
}

// finish decides, after all layers, which entries and markers the merged
// layer holds. The result is indexed by ref.
func (x *index) finish() ([][]*action, error) {
	acts := make([][]*action, len(x.counts))
	for j, n := range x.counts {
		acts[j] = make([]*action, n)
	}
	set := func(r ref, a *action) { acts[r.layer][r.ord] = a }

	var walk func(n *node, hidden bool)
	walk = func(n *node, hidden bool) {
		switch {
		case n.gone:
			n.marker = !hidden
		case n.dir:
			n.marker = n.opaque && !hidden
		}
		if n.win.ok() && !n.link {
			set(n.win, &action{node: n})
		}
		hidden = hidden || n.opaque
		for _, name := range sortedKids(n) {
			walk(n.kids[name], hidden)
		}
	}
	walk(x.root, false)

	for _, ino := range x.inodes {
		var live []hardlink
		for _, l := range ino.links {
			if n := x.lookup(l.path); n != nil && n.win == l.at {
				live = append(live, l)
			}
		}
		if len(live) == 0 {
			continue
		}
		target := ino.path
		switch {
		case !ino.src.ok():
			if !x.lowerVisible(ino.path) {
				return nil, fmt.Errorf("hard link %q -> %q: the target lives below the merged layers and they change it", live[0].path, ino.path)
			}
		case x.lookup(ino.path) != nil && x.lookup(ino.path).win == ino.src:
		default:
			// The target was replaced or deleted: its original content
			// goes under the first surviving link, the others link to it.
			first := live[0]
			set(ino.src, &action{node: x.lookup(first.path)})
			target, live = first.path, live[1:]
		}
		for _, l := range live {
			set(l.at, &action{node: x.lookup(l.path), linkname: target})
		}
	}
	return acts, nil
}

func sortedKids(n *node) []string {
	names := make([]string, 0, len(n.kids))
	for name := range n.kids {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
