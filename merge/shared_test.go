package merge

import (
	"context"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// Two images starting with the same layers merge their common group once
// through a Shared, and get the same layer for it.
func TestShared(t *testing.T) {
	var ls []v1.Layer
	for range 4 {
		l, err := random.Layer(1024, "application/vnd.oci.image.layer.v1.tar+gzip")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	parent, err := mutate.AppendLayers(empty.Image, ls[:3]...)
	if err != nil {
		t.Fatal(err)
	}
	child, err := mutate.AppendLayers(parent, ls[3])
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewShared(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mp, err := Apply(ctx, parent, []Group{{Layers: []int{0, 1}}, {Layers: []int{2}}}, 1<<20, WithShared(s), WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := Apply(ctx, child, []Group{{Layers: []int{0, 1}}, {Layers: []int{2, 3}}}, 1<<20, WithShared(s), WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	digest := func(img v1.Image, i int) v1.Hash {
		t.Helper()
		l, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		d, err := l[i].Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if a, b := digest(mp, 0), digest(mc, 0); a != b {
		t.Errorf("shared group merged differently: %s vs %s", a, b)
	}
	files, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 { // layers 0-1 once, layers 2-3 once
		t.Errorf("shared dir holds %d merged layers, want 2", len(files))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("Close left %s", s.dir)
	}
}
