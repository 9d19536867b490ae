package merge

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func digest(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkSame fails unless img flattens to want, both with spec semantics and
// with docker's in-order unpacking.
func checkSame(t *testing.T, what string, want fsys, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range readEntries(t, rc) {
			if p := clean(e.hdr.Name); seen[p] {
				t.Fatalf("%s: layer %d holds %q twice", what, i, p)
			} else {
				seen[p] = true
			}
		}
		rc.Close()
	}
	for _, sem := range []semantics{specSemantics, inOrder} {
		if d := diffFS(want, flatten(t, img, sem)); d != "" {
			t.Fatalf("%s (semantics %d): flattened filesystem differs:\n%s", what, sem, d)
		}
	}
}

func layerSizes(t testing.TB, img v1.Image) []int64 {
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var s []int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, n)
	}
	return s
}

// TestProperty merges random layer stacks at several size limits and checks
// the flattened filesystem is unchanged, merging again changes nothing, and
// merging only the top layers keeps what hides content below them.
func TestProperty(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	var merges int
	seeds := uint64(200)
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(seed, 7))
		n := 2 + int(seed%7)
		img := testImage(t, genStack(t, seed, n), seed%2 == 0, r)
		want := flatten(t, img, specSemantics)
		sizes := layerSizes(t, img)
		small := sizes[0] + sizes[1] + int64(r.IntN(1000))
		for _, max := range []int64{1, small, 1 << 40} {
			m, err := Image(ctx, img, max, WithTempDir(tmp))
			if err != nil {
				t.Fatalf("seed %d max %d: %v", seed, max, err)
			}
			for _, g := range m.Groups {
				if g.Merge() {
					merges++
				}
			}
			checkSame(t, fmt.Sprintf("seed %d max %d", seed, max), want, m)
			checkConfig(t, img, m)

			again, err := Image(ctx, m, max, WithTempDir(tmp))
			if err != nil {
				t.Fatal(err)
			}
			if anyMerge(again.Groups) || digest(t, again) != digest(t, m) {
				t.Fatalf("seed %d max %d: merging again changed the image: %+v", seed, max, again.Groups)
			}
			if max == 1<<40 {
				redo, err := Image(ctx, img, max, WithTempDir(tmp))
				if err != nil {
					t.Fatal(err)
				}
				if digest(t, redo) != digest(t, m) {
					t.Fatalf("seed %d: merge is not reproducible", seed)
				}
				redo.Close()
			}
			again.Close()
			m.Close()
		}

		// Merge the top layers only: what they delete lives below them.
		split := 1 + r.IntN(n-1)
		var groups []Group
		for i := range split {
			groups = append(groups, Group{Layers: []int{i}})
		}
		top := Group{}
		for i := split; i < n; i++ {
			top.Layers = append(top.Layers, i)
			top.CreatedBy = append(top.CreatedBy, "")
		}
		groups = append(groups, top)
		m, err := Apply(ctx, img, groups, 1<<40, WithTempDir(tmp))
		if err != nil {
			t.Fatalf("seed %d split %d: %v", seed, split, err)
		}
		checkSame(t, fmt.Sprintf("seed %d, top layers from %d", seed, split), want, m)
		m.Close()
	}
	if merges < int(seeds)*3/2 {
		t.Fatalf("only %d merged groups: the property test barely merges", merges)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("temp files left after Close: %v", left)
	}
}

// checkConfig: config and media types survive; history lines up with layers.
func checkConfig(t *testing.T, in, out v1.Image) {
	t.Helper()
	ic, _ := in.ConfigFile()
	oc, err := out.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ic.Config.Env, ",") != strings.Join(oc.Config.Env, ",") || ic.Config.User != oc.Config.User || ic.Config.WorkingDir != oc.Config.WorkingDir {
		t.Fatalf("config changed: %+v -> %+v", ic.Config, oc.Config)
	}
	im, _ := in.Manifest()
	om, _ := out.Manifest()
	if im.MediaType != om.MediaType || im.Config.MediaType != om.Config.MediaType {
		t.Fatalf("media types changed: %s/%s -> %s/%s", im.MediaType, im.Config.MediaType, om.MediaType, om.Config.MediaType)
	}
	for _, l := range om.Layers {
		if (om.MediaType == types.OCIManifestSchema1) != strings.HasPrefix(string(l.MediaType), "application/vnd.oci.") {
			t.Fatalf("layer media type %s in a %s manifest", l.MediaType, om.MediaType)
		}
	}
	if _, ok := layerHistory(oc.History, len(om.Layers)); !ok {
		t.Fatalf("history does not line up with %d layers: %+v", len(om.Layers), oc.History)
	}
	var emptyIn, emptyOut []string
	for _, h := range ic.History {
		if h.EmptyLayer {
			emptyIn = append(emptyIn, h.CreatedBy)
		}
	}
	for _, h := range oc.History {
		if h.EmptyLayer {
			emptyOut = append(emptyOut, h.CreatedBy)
		}
	}
	if strings.Join(emptyIn, "|") != strings.Join(emptyOut, "|") {
		t.Fatalf("empty-layer history changed: %q -> %q", emptyIn, emptyOut)
	}
}

// layerEntries lists the entries of the image's layer i as name:type.
func layerEntries(t *testing.T, img v1.Image, i int) []string {
	t.Helper()
	layers, _ := img.Layers()
	rc, err := layers[i].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	for _, e := range readEntries(t, rc) {
		s := e.hdr.Name + ":" + string(e.hdr.Typeflag)
		if e.hdr.Linkname != "" {
			s += "->" + e.hdr.Linkname
		}
		out = append(out, s)
	}
	return out
}

func file(name, body string) genEntry {
	return genEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: time.Unix(1_700_000_000, 0)}, body: []byte(body)}
}

func dir(name string) genEntry {
	return genEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: time.Unix(1_700_000_000, 0)}}
}

func hlink(name, target string) genEntry {
	return genEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: time.Unix(1_700_000_000, 0)}}
}

func mergeTop(t *testing.T, img v1.Image, from int) *Merged {
	t.Helper()
	layers, _ := img.Layers()
	var groups []Group
	for i := range from {
		groups = append(groups, Group{Layers: []int{i}})
	}
	top := Group{}
	for i := from; i < len(layers); i++ {
		top.Layers = append(top.Layers, i)
		top.CreatedBy = append(top.CreatedBy, "")
	}
	m, err := Apply(context.Background(), img, append(groups, top), 1<<40, WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers [][]genEntry
		from   int      // merge layers from this one up
		want   []string // entries of the merged layer
	}{{
		name: "whiteout and opaque dir kept for content below the group",
		layers: [][]genEntry{
			{dir("a/"), file("a/x", "x"), file("a/y", "y"), dir("d/"), file("d/old", "o")},
			{dir("a/"), file("a/.wh.x", "")},
			{dir("d/"), file("d/.wh..wh..opq", ""), file("d/new", "n")},
		},
		from: 1,
		want: []string{"a/:5", "a/.wh.x:0", "d/:5", "d/.wh..wh..opq:0", "d/new:0"},
	}, {
		name: "path created and deleted in the group leaves only its whiteout",
		layers: [][]genEntry{
			{dir("base/")},
			{dir("tmp/"), file("tmp/t", "t")},
			{file(".wh.tmp", "")},
		},
		from: 1,
		want: []string{".wh.tmp:0"},
	}, {
		name: "file re-added after a whiteout replaces it without a whiteout",
		layers: [][]genEntry{
			{file("f", "one")},
			{file(".wh.f", "")},
			{file("f", "three")},
		},
		from: 1,
		want: []string{"f:0"},
	}, {
		name: "directory re-added after a whiteout becomes opaque",
		layers: [][]genEntry{
			{dir("d/"), file("d/old", "o")},
			{file(".wh.d", "")},
			{dir("d/"), file("d/new", "n")},
		},
		from: 1,
		want: []string{"d/:5", "d/.wh..wh..opq:0", "d/new:0"},
	}, {
		name: "parent deletion removes children of earlier group layers",
		layers: [][]genEntry{
			{dir("base/")},
			{dir("p/"), dir("p/q/"), file("p/q/f", "f")},
			{file(".wh.p", "")},
		},
		from: 1,
		want: []string{".wh.p:0"},
	}, {
		name: "hard link to a file replaced later keeps the original content",
		layers: [][]genEntry{
			{dir("bin/"), file("bin/t", "original"), hlink("bin/p", "bin/t"), hlink("bin/q", "./bin/t")},
			{dir("bin/"), file("bin/t", "replaced")},
		},
		from: 0,
		want: []string{"bin/:5", "bin/p:0", "bin/q:1->bin/p", "bin/t:0"},
	}, {
		name: "hard link to a file deleted later",
		layers: [][]genEntry{
			{dir("bin/"), file("bin/t", "original"), hlink("bin/p", "bin/t")},
			{dir("bin/"), file("bin/.wh.t", "")},
		},
		from: 0,
		want: []string{"bin/:5", "bin/.wh.t:0", "bin/p:0"},
	}, {
		name: "hard link across group layers",
		layers: [][]genEntry{
			{file("t", "content")},
			{hlink("p", "t")},
		},
		from: 0,
		want: []string{"t:0", "p:1->t"},
	}, {
		name: "hard link to a file below the group",
		layers: [][]genEntry{
			{file("t", "content")},
			{file("x", "x")},
			{hlink("p", "t")},
		},
		from: 1,
		want: []string{"x:0", "p:1->t"},
	}, {
		name: "directory header comes before its content",
		layers: [][]genEntry{
			{dir("d/"), file("d/a", "a")},
			{dir("d/"), file("d/b", "b")},
		},
		from: 0,
		want: []string{"d/:5", "d/a:0", "d/b:0"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var layers [][]byte
			for _, l := range tc.layers {
				layers = append(layers, tarBytes(t, l))
			}
			img := testImage(t, layers, false, nil)
			m := mergeTop(t, img, tc.from)
			checkSame(t, tc.name, flatten(t, img, specSemantics), m)
			if got := layerEntries(t, m, tc.from); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("merged layer:\n  got  %q\n  want %q", got, tc.want)
			}
		})
	}
}

func TestHardLinkBelowGroupChanged(t *testing.T) {
	img := testImage(t, [][]byte{
		tarBytes(t, []genEntry{file("t", "below")}),
		tarBytes(t, []genEntry{hlink("p", "t")}),
		tarBytes(t, []genEntry{file("t", "changed")}),
	}, false, nil)
	groups := []Group{{Layers: []int{0}}, {Layers: []int{1, 2}, CreatedBy: []string{"", ""}}}
	tmp := t.TempDir()
	_, err := Apply(context.Background(), img, groups, 1<<40, WithTempDir(tmp))
	if err == nil || !strings.Contains(err.Error(), `hard link "p" -> "t"`) {
		t.Fatalf("want an error naming the link, got %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("temp files left after an error: %v", left)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	img := testImage(t, genStack(t, 1, 4), false, nil)
	tmp := t.TempDir()
	_, err := Image(ctx, img, 1<<40, WithTempDir(tmp))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("temp files left after cancel: %v", left)
	}
}

// cancelLayer cancels the merge while pass 2 reads it.
type cancelLayer struct {
	v1.Layer
	opens  *int
	cancel context.CancelFunc
}

func (c cancelLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := c.Layer.Uncompressed()
	if *c.opens++; *c.opens == 2 {
		c.cancel()
	}
	return rc, err
}

func TestCancelDuringMerge(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	img := testImage(t, genStack(t, 2, 3), false, nil)
	layers, _ := img.Layers()
	opens := 0
	layers[1] = cancelLayer{layers[1], &opens, cancel}
	groups := []Group{{Layers: []int{0, 1, 2}, CreatedBy: []string{"", "", ""}}}
	tmp := t.TempDir()
	_, err := Apply(ctx, imageWithLayers{img, layers}, groups, 1<<40, WithTempDir(tmp))
	if !errors.Is(err, context.Canceled) || opens != 2 {
		t.Fatalf("want context.Canceled in pass 2, got %v after %d reads", err, opens)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("temp files left after cancel: %v", left)
	}
}

type imageWithLayers struct {
	v1.Image
	layers []v1.Layer
}

func (i imageWithLayers) Layers() ([]v1.Layer, error) { return i.layers, nil }

func TestBadPlan(t *testing.T) {
	img := testImage(t, genStack(t, 1, 3), false, nil)
	for _, groups := range [][]Group{
		{{Layers: []int{0, 1}}},
		{{Layers: []int{0}}, {Layers: []int{2, 1}}},
		{{Layers: []int{0}}, {}, {Layers: []int{1, 2}}},
	} {
		if _, err := Apply(context.Background(), img, groups, 1, WithTempDir(t.TempDir())); err == nil {
			t.Fatalf("plan %+v accepted", groups)
		}
	}
}

func TestUncompressed(t *testing.T) {
	img := testImage(t, genStack(t, 3, 5), true, nil)
	m, err := Image(context.Background(), img, 1<<40, WithoutCompression(), WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	checkSame(t, "uncompressed", flatten(t, img, specSemantics), m)
	mf, _ := m.Manifest()
	if len(mf.Layers) != 1 || mf.Layers[0].MediaType != types.OCIUncompressedLayer {
		t.Fatalf("want one uncompressed OCI layer, got %+v", mf.Layers)
	}
	l, _ := m.Layers()
	d, _ := l[0].Digest()
	id, _ := l[0].DiffID()
	if d != id {
		t.Fatalf("uncompressed layer digest %s != diff id %s", d, id)
	}
	var buf bytes.Buffer
	rc, _ := l[0].Compressed()
	buf.ReadFrom(rc)
	rc.Close()
	if h, _, _ := v1.SHA256(&buf); h != d {
		t.Fatalf("layer digest %s does not match content %s", d, h)
	}
}
