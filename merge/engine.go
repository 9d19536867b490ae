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
func FromEngine(ctx context.Context, e engine.Engine, req Request, opts ...Option) ([]Group, error) {
	tag := req.Tag
	if tag == "" {
		tag = req.Ref
	}
	if _, err := name.NewTag(tag); err != nil { // before the long part
		return nil, fmt.Errorf("merge %s: tag %q: %w", req.Ref, tag, err)
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
