package merge

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Option configures Image and Apply.
type Option func(*options)

type options struct {
	tempDir      string
	level        int
	uncompressed bool
	shared       *Shared
}

// WithTempDir sets where merged layers are written ("" = os.TempDir()).
// They need as much space as the merged layers, compressed.
func WithTempDir(dir string) Option { return func(o *options) { o.tempDir = dir } }

// WithCompressionLevel sets the gzip level of merged layers
// (default gzip.DefaultCompression).
func WithCompressionLevel(level int) Option { return func(o *options) { o.level = level } }

// WithoutCompression writes merged layers as plain tar (faster when the
// image only goes to `docker load`).
func WithoutCompression() Option { return func(o *options) { o.uncompressed = true } }

// Merged is a merged image whose new layers live in a temp directory: use it
// (write, push, load) before Close, which removes them.
type Merged struct {
	v1.Image
	Groups []Group
	dir    string
}

// Close removes the merged layers' temp files.
func (m *Merged) Close() error {
	if m == nil || m.dir == "" {
		return nil
	}
	return os.RemoveAll(m.dir)
}

// Image merges img's layers as Plan(img, maxBytes) groups them. When no group
// merges, the result is img itself (same digest).
func Image(ctx context.Context, img v1.Image, maxBytes int64, opts ...Option) (*Merged, error) {
	groups, err := Plan(img, maxBytes)
	if err != nil {
		return nil, err
	}
	return Apply(ctx, img, groups, maxBytes, opts...)
}

// Apply merges img's layers as groups say (groups must list every layer
// once, in order). maxBytes is recorded in the history of merged layers so a
// later Plan with that limit or less keeps them. On error or cancellation
// nothing is left on disk.
func Apply(ctx context.Context, img v1.Image, groups []Group, maxBytes int64, opts ...Option) (_ *Merged, err error) {
	o := options{level: gzip.DefaultCompression}
	for _, opt := range opts {
		opt(&o)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("merge: reading layers: %w", err)
	}
	if err := checkGroups(groups, len(layers)); err != nil {
		return nil, err
	}
	m := &Merged{Image: img, Groups: groups}
	if !anyMerge(groups) {
		return m, nil
	}
	mf, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("merge: reading manifest: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("merge: reading config: %w", err)
	}

	if m.dir, err = os.MkdirTemp(o.tempDir, "ov-merge-"); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()

	mt := mergedMediaType(mf.MediaType, o.uncompressed)
	var adds []mutate.Addendum
	var diffIDs []v1.Hash
	for _, g := range groups {
		var add mutate.Addendum
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if g.Merge() {
			first, last := g.Layers[0], g.Layers[len(g.Layers)-1]
			var l v1.Layer
			if o.shared != nil {
				l, err = o.shared.layer(ctx, layers[first:last+1], first, o, mt)
			} else {
				l, err = mergeLayers(ctx, layers[first:last+1], first, m.dir, o, mt)
			}
			if err != nil {
				return nil, fmt.Errorf("merge: layers %d-%d: %w", first, last, err)
			}
			add = mutate.Addendum{Layer: l}
		} else {
			i := g.Layers[0]
			d := mf.Layers[i]
			add = mutate.Addendum{Layer: layers[i], Annotations: d.Annotations, URLs: d.URLs, MediaType: d.MediaType}
		}
		id, err := add.Layer.DiffID()
		if err != nil {
			return nil, fmt.Errorf("merge: layer %d: %w", g.Layers[0], err)
		}
		adds, diffIDs = append(adds, add), append(diffIDs, id)
	}

	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, mf.MediaType), mf.Config.MediaType)
	out, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs = diffIDs
	cfg.History = history(cfg.History, groups, len(layers), maxBytes)
	if out, err = mutate.ConfigFile(out, cfg); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if len(mf.Annotations) > 0 {
		out = mutate.Annotations(out, mf.Annotations).(v1.Image)
	}
	m.Image = out
	return m, nil
}

func anyMerge(groups []Group) bool {
	for _, g := range groups {
		if g.Merge() {
			return true
		}
	}
	return false
}

func checkGroups(groups []Group, n int) error {
	next := 0
	for _, g := range groups {
		if len(g.Layers) == 0 {
			return fmt.Errorf("merge: empty group in plan")
		}
		for _, i := range g.Layers {
			if i != next {
				return fmt.Errorf("merge: plan lists layer %d where layer %d belongs", i, next)
			}
			next++
		}
	}
	if next != n {
		return fmt.Errorf("merge: plan covers %d of %d layers", next, n)
	}
	return nil
}

func mergedMediaType(manifest types.MediaType, uncompressed bool) types.MediaType {
	oci := manifest == types.OCIManifestSchema1
	switch {
	case oci && uncompressed:
		return types.OCIUncompressedLayer
	case oci:
		return types.OCILayer
	case uncompressed:
		return types.DockerUncompressedLayer
	default:
		return types.DockerLayer
	}
}

// history realigns the config history with the merged layers: entries of
// kept layers and empty-layer entries (ENV, USER, ...) stay in place; a
// merged group's entries become one entry where its last layer was.
func history(old []v1.History, groups []Group, nLayers int, maxBytes int64) []v1.History {
	idx, ok := layerHistory(old, nLayers)
	createdBy := layerCreatedBy(old, nLayers)
	mergedEntry := func(g Group) string {
		return mergedCreatedBy(maxBytes, createdBy[g.Layers[0]:g.Layers[len(g.Layers)-1]+1])
	}
	var out []v1.History
	if !ok { // unknown alignment: keep the empty-layer entries, describe each layer anew
		for _, h := range old {
			if h.EmptyLayer {
				out = append(out, h)
			}
		}
		for _, g := range groups {
			h := v1.History{Comment: "ov merge: layer kept"}
			if g.Merge() {
				h = v1.History{CreatedBy: mergedEntry(g)}
			}
			out = append(out, h)
		}
		return out
	}
	last := map[int]Group{} // history index of a group's last layer -> group
	inMerge := map[int]bool{}
	for _, g := range groups {
		if g.Merge() {
			last[idx[g.Layers[len(g.Layers)-1]]] = g
			for _, i := range g.Layers {
				inMerge[idx[i]] = true
			}
		}
	}
	for i, h := range old {
		if !inMerge[i] {
			out = append(out, h)
			continue
		}
		g, ok := last[i]
		if !ok {
			continue
		}
		var created time.Time
		for _, l := range g.Layers {
			if t := old[idx[l]].Created.Time; t.After(created) {
				created = t
			}
		}
		out = append(out, v1.History{Created: v1.Time{Time: created}, CreatedBy: mergedEntry(g)})
	}
	return out
}
