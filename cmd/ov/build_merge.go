package main

import (
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// MergeFlags are ov build's layer-merge flags. Which images merge: every
// target with --merge, none with --no-merge, else those with a `merge` block
// in images.yml (theirs or from defaults). `merge.auto` plays no part here:
// it only picks the images of `ov merge --all`, for images built some other
// way. The limit is --max-mb, else merge.max_mb, else 128, as for ov merge.
type MergeFlags struct {
	Merge   bool `help:"Merge small layers of every image while exporting (default: only images with a merge block in images.yml)."`
	NoMerge bool `name:"no-merge" help:"Export every image as built, whatever images.yml says about merging."`
	MaxMB   int  `name:"max-mb" placeholder:"N" help:"Largest merged layer in MB, compressed (default: images.yml merge.max_mb, else 128)."`
}

func (f MergeFlags) check() error {
	if f.Merge && f.NoMerge {
		return userErrorf("--merge and --no-merge exclude each other")
	}
	if f.MaxMB < 0 {
		return userErrorf("--max-mb must be > 0")
	}
	return nil
}

// maxBytes is img's merge limit, 0 when it is not merged.
func (f MergeFlags) maxBytes(img *plan.Image) int64 {
	s := img.Spec
	if s == nil {
		s = &spec.Image{}
	}
	if f.NoMerge || !f.Merge && s.Merge == nil {
		return 0
	}
	return int64(mergeMaxMB(s, f.MaxMB)) << 20
}

// exporter sends what is merged through export.Merging, so the outputs get
// the merged image straight from the build.
func (f MergeFlags) exporter(dests []export.Dest) export.Exporter {
	if f.NoMerge {
		return export.Multi(dests...)
	}
	return export.Merging(f.maxBytes, dests...)
}

// mergeNote is what the "built" line says about a merge.
func mergeNote(r llb.Result) string {
	if s := r.ExporterResponse[export.MergeSummaryKey]; s != "" {
		return " (merged " + s + ")"
	}
	return ""
}
