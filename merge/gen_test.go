package merge

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Random layer stacks for the property test. Paths come from a small pool so
// layers keep hitting each other's paths: overwrites, files replacing
// directories and back, deletions, opaque directories, hard links whose
// target a later layer replaces.

type genEntry struct {
	hdr  tar.Header
	body []byte
}

func tarBytes(t testing.TB, entries []genEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing %s: %v", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type gen struct {
	t     testing.TB
	r     *rand.Rand
	state fsys // the stack so far, flattened
}

func genStack(t testing.TB, seed uint64, n int) [][]byte {
	g := &gen{t: t, r: rand.New(rand.NewPCG(seed, 42)), state: fsys{}}
	var layers [][]byte
	for range n {
		b := tarBytes(t, g.layer())
		g.state.applyLayer(t, readEntries(t, bytes.NewReader(b)), specSemantics)
		layers = append(layers, b)
	}
	return layers
}

type layerGen struct {
	*gen
	entries []genEntry
	written map[string]byte // path -> type written in this layer
	deleted []string        // paths whited out in this layer
}

var names = []string{"a", "b", "c", "f"}

func (g *gen) randPath() string {
	parts := make([]string, 1+g.r.IntN(3))
	for i := range parts {
		parts[i] = names[g.r.IntN(len(names))]
	}
	return strings.Join(parts, "/")
}

// existing picks a path of the stack so far (or a random one).
func (g *gen) existing(dirsOnly bool) string {
	var ps []string
	for p, m := range g.state {
		if !dirsOnly || m.typ == tar.TypeDir {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 || g.r.IntN(5) == 0 {
		return g.randPath()
	}
	slices.Sort(ps)
	return ps[g.r.IntN(len(ps))]
}

func (g *gen) header(typ byte, p string) tar.Header {
	h := tar.Header{
		Typeflag: typ,
		Name:     p,
		Mode:     []int64{0o644, 0o755, 0o600, 0o4755}[g.r.IntN(4)],
		Uid:      []int{0, 1000, 65534}[g.r.IntN(3)],
		Gid:      []int{0, 1000, 65534}[g.r.IntN(3)],
		ModTime:  time.Unix(1_700_000_000+int64(g.r.IntN(1_000_000)), 0),
	}
	if typ == tar.TypeDir {
		h.Name += "/"
	}
	switch g.r.IntN(6) {
	case 0: // sub-second mtime: needs PAX
		h.ModTime = h.ModTime.Add(time.Duration(1 + g.r.IntN(999_999_999)))
		h.Format = tar.FormatPAX
	case 1: // user xattrs exist on files and directories only
		if typ == tar.TypeReg || typ == tar.TypeDir {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.gen": fmt.Sprint(g.r.IntN(1000))}
		}
	case 2:
		h.Name = "./" + h.Name
	}
	return h
}

func (l *layerGen) emit(h tar.Header, body []byte) {
	l.entries = append(l.entries, genEntry{h, body})
}

// writable: p is not written yet and no parent was written as a non-directory.
//
// Nothing is written where this layer deleted: a whiteout and an entry for
// the same directory in one layer is valid OCI (the whiteout hides lower
// layers only) but docker and podman unpack it as if there was no whiteout;
// layer producers write an opaque directory instead.
func (l *layerGen) writable(p string) bool {
	if _, ok := l.written[p]; ok {
		return false
	}
	for _, d := range l.deleted {
		if under(p, d) || under(d, p) {
			return false
		}
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if t, ok := l.written[d]; ok && t != tar.TypeDir {
			return false
		}
	}
	return true
}

func (l *layerGen) writtenUnder(p string) bool {
	for w := range l.written {
		if under(w, p) {
			return true
		}
	}
	return false
}

// parents writes the directories above p, like layer diffs do.
func (l *layerGen) parents(p string) {
	var dirs []string
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		if _, ok := l.written[d]; ok {
			continue
		}
		h := l.header(tar.TypeDir, d)
		if m, ok := l.state[d]; ok && m.typ == tar.TypeDir {
			h.Mode, h.Uid, h.Gid = m.mode, m.uid, m.gid
		}
		l.emit(h, nil)
		l.written[d] = tar.TypeDir
	}
}

func (l *layerGen) put(typ byte, p string, body []byte, mod func(*tar.Header)) {
	l.parents(p)
	h := l.header(typ, p)
	if mod != nil {
		mod(&h)
	}
	l.emit(h, body)
	l.written[p] = typ
}

func (g *gen) body() []byte {
	n := g.r.IntN(200)
	if g.r.IntN(10) == 0 {
		n = 40_000 + g.r.IntN(40_000)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

func (g *gen) layer() []genEntry {
	l := &layerGen{gen: g, written: map[string]byte{}}
	for range 2 + g.r.IntN(8) {
		p := g.randPath()
		switch op := g.r.IntN(20); {
		case op < 7:
			if l.writable(p) {
				l.put(tar.TypeReg, p, g.body(), nil)
			}
		case op < 9:
			if l.writable(p) {
				l.put(tar.TypeDir, p, nil, nil)
			}
		case op < 10:
			if l.writable(p) {
				target := []string{"a", "../b/c", "/f", "nowhere"}[g.r.IntN(4)]
				l.put(tar.TypeSymlink, p, nil, func(h *tar.Header) { h.Linkname = target })
			}
		case op < 11:
			if l.writable(p) {
				typ := []byte{tar.TypeChar, tar.TypeBlock, tar.TypeFifo}[g.r.IntN(3)]
				l.put(typ, p, nil, func(h *tar.Header) {
					if typ != tar.TypeFifo {
						h.Devmajor, h.Devminor = int64(1+g.r.IntN(8)), int64(g.r.IntN(256))
					}
				})
			}
		case op < 14: // hard link to a file of this layer
			var targets []string
			for w, t := range l.written {
				if t == tar.TypeReg || t == tar.TypeLink {
					targets = append(targets, w)
				}
			}
			if len(targets) == 0 || !l.writable(p) {
				continue
			}
			slices.Sort(targets)
			target := targets[g.r.IntN(len(targets))]
			if under(p, target) || under(target, p) {
				continue
			}
			var th tar.Header // a link's header repeats its inode's metadata, as in real layers
			for _, e := range l.entries {
				if clean(e.hdr.Name) == target {
					th = e.hdr
				}
			}
			if g.r.IntN(3) == 0 {
				target = "./" + target
			}
			l.put(tar.TypeLink, p, nil, func(h *tar.Header) {
				h.Linkname, h.Mode, h.Uid, h.Gid, h.ModTime = target, th.Mode, th.Uid, th.Gid, th.ModTime
				h.PAXRecords, h.Format = th.PAXRecords, th.Format
			})
		case op < 17: // whiteout
			p = g.existing(false)
			if l.writtenUnder(p) || !l.writable(p) {
				continue
			}
			l.parents(p)
			h := l.header(tar.TypeReg, path.Join(path.Dir(p), ".wh."+path.Base(p)))
			h.PAXRecords, h.Format = nil, tar.FormatUnknown
			l.emit(h, nil)
			l.deleted = append(l.deleted, p)
		default: // opaque directory, maybe refilled
			p = g.existing(true)
			if t, ok := l.written[p]; ok && t != tar.TypeDir {
				continue
			}
			if _, ok := l.written[p]; !ok {
				if !l.writable(p) {
					continue
				}
				l.put(tar.TypeDir, p, nil, func(h *tar.Header) {
					if m, ok := l.state[p]; ok && m.typ == tar.TypeDir {
						h.Mode, h.Uid, h.Gid = m.mode, m.uid, m.gid
					}
				})
			}
			var kids bool
			for w := range l.written {
				kids = kids || (w != p && under(w, p))
			}
			if kids {
				continue
			}
			marker := path.Join(p, ".wh..wh..opq")
			l.emit(tar.Header{Typeflag: tar.TypeReg, Name: marker, Mode: 0o644, ModTime: time.Unix(0, 0)}, nil)
			l.written[marker] = 'W' // not a hard link target
			if c := path.Join(p, names[g.r.IntN(len(names))]); g.r.IntN(2) == 0 && l.writable(c) {
				l.put(tar.TypeReg, c, g.body(), nil)
			}
		}
	}
	return l.entries
}

// testImage builds an image from layer tars, with a history entry per layer
// and empty-layer entries (ENV, USER) in between.
func testImage(t testing.TB, layers [][]byte, oci bool, r *rand.Rand) v1.Image {
	t.Helper()
	var img v1.Image = empty.Image
	layerType := types.DockerLayer
	if oci {
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
		layerType = types.OCILayer
	}
	img, err := mutate.Config(img, v1.Config{Env: []string{"PATH=/usr/bin", "HOME=/home/user"}, User: "1000", WorkingDir: "/home/user"})
	if err != nil {
		t.Fatal(err)
	}
	var adds []mutate.Addendum
	for i, b := range layers {
		if r != nil && r.IntN(3) == 0 {
			adds = append(adds, mutate.Addendum{History: v1.History{CreatedBy: fmt.Sprintf("ENV STEP=%d", i), EmptyLayer: true}})
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}, tarball.WithMediaType(layerType))
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{
			CreatedBy: fmt.Sprintf("/bin/sh -c step %d", i),
			Created:   v1.Time{Time: time.Unix(1_700_000_000+int64(i), 0).UTC()},
		}})
	}
	adds = append(adds, mutate.Addendum{History: v1.History{CreatedBy: "USER 1000", EmptyLayer: true}})
	img, err = mutate.Append(img, adds...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
