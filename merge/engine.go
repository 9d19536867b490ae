package merge

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/overthink/ov/engine"
)

// Request is one `ov merge` of an image in the engine.
type Request struct {
	Ref      string    // image to merge
	Tag      string    // name of the merged image ("" = Ref, replacing it)
	MaxBytes int64     // size limit of a merged layer (compressed)
	DryRun   bool      // report the plan only
	Report   io.Writer // where the plan goes (nil = nowhere)
}

// FromEngine saves req.Ref out of the engine, reports the plan, merges and
// loads the result back. Merged layers go uncompressed: `docker load` needs
// no gzip. It returns the plan. Cancel ctx to abort; temp files are removed
// either way.
//
// An image that ov merge already merged with this limit or a larger one is
// not saved (a save reads the whole image, and Plan then compresses every
// layer to measure it): when the engine's history shows that Plan keeps
// every layer (keptByHistory), the plan comes from it, without sizes or
// digests. A dry run always saves, since it reports sizes.
func FromEngine(ctx context.Context, e engine.Engine, req Request, opts ...Option) ([]Group, error) {
	tag := req.Tag
	if tag == "" {
		tag = req.Ref
	}
	if _, err := name.NewTag(tag); err != nil { // before the long part
		return nil, fmt.Errorf("merge %s: tag %q: %w", req.Ref, tag, err)
	}
	if !req.DryRun { // a dry run reports sizes: they need the save
		if groups, ok := keptByHistory(ctx, e, req.Ref, req.MaxBytes); ok {
			if req.Report != nil {
				if err := writeKept(req.Report, groups, req.MaxBytes); err != nil {
					return nil, err
				}
			}
			if tag == req.Ref {
				return groups, nil
			}
			return groups, e.Tag(ctx, req.Ref, tag)
		}
	}
	a, err := e.Save(ctx, req.Ref)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	groups, err := Plan(a, req.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Ref, err)
	}
	if req.Report != nil {
		if err := WritePlan(req.Report, groups); err != nil {
			return nil, err
		}
	}
	switch {
	case req.DryRun:
		return groups, nil
	case !anyMerge(groups) && tag == req.Ref:
		return groups, nil
	case !anyMerge(groups):
		return groups, e.Tag(ctx, req.Ref, tag)
	}
	opts = append([]Option{WithTempDir(e.TempDir), WithoutCompression()}, opts...)
	m, err := Apply(ctx, a, groups, req.MaxBytes, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Ref, err)
	}
	defer m.Close()
	if err := e.Load(ctx, m, tag); err != nil {
		return nil, fmt.Errorf("%s: %w", req.Ref, err)
	}
	return groups, nil
}

// keptByHistory reports whether Plan(ref, maxBytes) keeps every layer,
// deciding from the engine's metadata alone (no save), and if so returns
// its groups: one layer each, with Sizes and Digests nil. false means the
// metadata cannot tell; the save decides.
//
// Plan groups by compressed size, and the engine cannot tell it: it stores
// layers uncompressed, `docker save` writes them so, and Plan gzips each one
// to measure it. The uncompressed sizes in the history prove nothing about
// that (a layer can compress to a thousandth of its size). What the history
// does prove is Plan's other rule: a layer that ov merge made with a limit
// of maxBytes or more (its created_by says so) is a group of its own,
// whatever the sizes. So when no two neighbouring layers both lack that
// mark, Plan can join no two layers: every group is one layer, exactly as
// the save would find. Plan reads the marks through the config history
// lined up with the layers (layerHistory), and so does this, on the
// engine's history; when that does not line up, the save decides. With
// docker the line-up is exact too when it holds: a non-empty entry may read
// as empty (engine.Metadata), never the reverse, and dockerd's store refuses
// a config with more non-empty entries than layers, so as many entries
// reading non-empty as there are layers are the config's non-empty ones. Images ov did not merge, or merged with a smaller
// limit, are always saved.
func keptByHistory(ctx context.Context, e engine.Engine, ref string, maxBytes int64) ([]Group, bool) {
	if maxBytes <= 0 {
		return nil, false // Plan's error
	}
	m, err := e.Metadata(ctx, ref)
	if err != nil {
		return nil, false // the save reports it, or succeeds where this failed
	}
	var createdBy []string
	if m.Layers > 1 {
		if _, ok := layerHistory(m.History, m.Layers); !ok {
			return nil, false
		}
	}
	createdBy = layerCreatedBy(m.History, m.Layers)
	marked := func(i int) bool {
		max, ok := mergedMax(createdBy[i])
		return ok && max >= maxBytes
	}
	for i := 1; i < m.Layers; i++ {
		if !marked(i-1) && !marked(i) {
			return nil, false
		}
	}
	groups := make([]Group, m.Layers)
	for i := range groups {
		groups[i] = Group{Layers: []int{i}, CreatedBy: []string{createdBy[i]}}
	}
	return groups, true
}

// writeKept is WritePlan for keptByHistory's groups, saying why sizes and
// digests are missing.
func writeKept(w io.Writer, groups []Group, maxBytes int64) error {
	if err := WritePlan(w, groups); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "(not saved: each layer was made by ov merge with max >= %d B or borders only such layers, so every layer stays; --dry-run saves it to show sizes)\n", maxBytes)
	return err
}
