// Package imagediff says how two images differ, for a person to act on:
// their manifests' annotations, their configs' fields, and per layer that
// differs the paths whose tar entry (header or content) differs. ov verify
// prints it for a rebuild that does not reproduce a recorded image; the
// reproducibility tests put it in their failures.
package imagediff

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/overthink/ov/internal/tarwalk"
)

// Diff is how image b differs from image a.
type Diff struct {
	// Annotations are the manifest annotations whose values differ.
	Annotations []string
	// Config are the config fields that differ ("created", "config.Labels").
	Config []string
	// LayerCounts are a's and b's number of layers, when they differ.
	LayerCounts [2]int
	// Layers are the layers (by index) whose digests differ.
	Layers []Layer
}

// Layer is one layer that differs between the images.
type Layer struct {
	Index   int
	A, B    v1.Hash
	History string // what made it (b's history entry), "" when unknown
	// Paths are the entries that differ, sorted by name: Entry
	// descriptions of each side ("" where the layer lacks it).
	Paths []Path
}

// Path is one tar entry that differs.
type Path struct{ Name, A, B string }

// Empty reports whether nothing differs.
func (d Diff) Empty() bool {
	return len(d.Annotations)+len(d.Config)+len(d.Layers) == 0 && d.LayerCounts == [2]int{}
}

// Images compares a and b.
func Images(a, b v1.Image) (Diff, error) {
	var d Diff
	ma, err := a.Manifest()
	if err != nil {
		return d, err
	}
	mb, err := b.Manifest()
	if err != nil {
		return d, err
	}
	d.Annotations = differing(ma.Annotations, mb.Annotations)
	if d.Config, err = configDiff(a, b); err != nil {
		return d, err
	}
	la, err := a.Layers()
	if err != nil {
		return d, err
	}
	lb, err := b.Layers()
	if err != nil {
		return d, err
	}
	if len(la) != len(lb) {
		d.LayerCounts = [2]int{len(la), len(lb)}
	}
	hist := layerHistory(b)
	for i := range min(len(la), len(lb)) {
		l, err := layerDiff(la[i], lb[i])
		if err != nil {
			return d, fmt.Errorf("layer %d: %w", i, err)
		}
		if l == nil {
			continue
		}
		l.Index = i
		if len(hist) == len(lb) {
			l.History = hist[i]
		}
		d.Layers = append(d.Layers, *l)
	}
	return d, nil
}

// layerDiff is how b differs from a, nil when their digests are equal.
func layerDiff(a, b v1.Layer) (*Layer, error) {
	da, err := a.Digest()
	if err != nil {
		return nil, err
	}
	db, err := b.Digest()
	if err != nil {
		return nil, err
	}
	if da == db {
		return nil, nil
	}
	ea, err := Entries(a)
	if err != nil {
		return nil, err
	}
	eb, err := Entries(b)
	if err != nil {
		return nil, err
	}
	l := &Layer{A: da, B: db}
	for _, n := range differing(ea, eb) {
		l.Paths = append(l.Paths, Path{Name: n, A: ea[n], B: eb[n]})
	}
	return l, nil
}

// differing are the keys whose values differ between a and b, sorted.
func differing[V comparable](a, b map[string]V) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if v, ok := b[k]; !ok || v != a[k] {
			out = append(out, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// configDiff names the config fields that differ: top-level ones, and
// those of "config" (the runtime settings) one level down. Not rootfs:
// its diff IDs differ with the layers, which are compared one by one.
func configDiff(a, b v1.Image) ([]string, error) {
	var cfgs [2]map[string]any
	for i, img := range []v1.Image{a, b} {
		raw, err := img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &cfgs[i]); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, k := range keysOf(cfgs[0], cfgs[1]) {
		x, y := cfgs[0][k], cfgs[1][k]
		if k == "rootfs" || reflect.DeepEqual(x, y) {
			continue
		}
		sx, okx := x.(map[string]any)
		sy, oky := y.(map[string]any)
		if k != "config" || !okx || !oky {
			out = append(out, k)
			continue
		}
		for _, s := range keysOf(sx, sy) {
			if !reflect.DeepEqual(sx[s], sy[s]) {
				out = append(out, k+"."+s)
			}
		}
	}
	return out, nil
}

func keysOf(a, b map[string]any) []string {
	ks := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// layerHistory is what made each layer of img (its history entries with
// a layer), "" when the history does not match the layers.
func layerHistory(img v1.Image) []string {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil
	}
	var out []string
	for _, h := range cf.History {
		if !h.EmptyLayer {
			out = append(out, h.CreatedBy)
		}
	}
	return out
}

// Entries describes each entry of a layer by name: its header fields
// (mtime included) and a hash of its content.
func Entries(l v1.Layer) (map[string]string, error) {
	out := map[string]string{}
	err := tarwalk.Layer(l, func(h *tar.Header, content io.Reader) error {
		sum := sha256.New()
		if _, err := io.Copy(sum, content); err != nil {
			return err
		}
		out[h.Name] = fmt.Sprintf("type %c mode %o %d:%d size %d mtime %d link %s pax %v sha %s",
			h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime.Unix(), h.Linkname, h.PAXRecords, hex.EncodeToString(sum.Sum(nil))[:12])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
