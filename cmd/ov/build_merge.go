package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/overthink/ov/builder"
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/builddir"
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
// the merged image straight from the build; what is not merged goes
// through export.Encoding when store is not nil (see encodingStore).
func (f MergeFlags) exporter(dests []export.Dest, store *export.Store) export.Exporter {
	plain := export.Multi(dests...)
	if store != nil {
		plain = export.Encoding(store, dests...)
	}
	if f.NoMerge {
		return plain
	}
	return export.MergingOr(f.maxBytes, plain, dests...)
}

// storeMaxAge is how long the export store keeps what no build used.
const storeMaxAge = 7 * 24 * time.Hour

// storeDirs are the export store's directories, relative to the project:
// where BuildKit (blobs, ingest) and ov (encoded) write.
var storeDirs = []string{builddir.ExportStore + "/blobs/sha256", builddir.ExportStore + "/encoded", builddir.ExportStore + "/ingest"}

// encodingStore is the export store of the project at dir when the
// builder at addr runs on this host (export.Encoding: ov encodes the
// layers), nil otherwise (BuildKit encodes and sends them itself, and
// nothing crosses the network uncompressed). The caller holds the build
// directory's lock.
func encodingStore(dir, addr string) (*export.Store, error) {
	if !builder.OnThisHost(addr) {
		return nil, nil
	}
	// No symbolic link on the way to where BuildKit and ov write.
	for _, d := range storeDirs {
		if err := builddir.MkdirAll(dir, d); err != nil {
			return nil, fmt.Errorf("export store: %w", err)
		}
	}
	s, err := export.OpenStore(filepath.Join(dir, filepath.FromSlash(builddir.ExportStore)))
	if err != nil {
		return nil, err
	}
	if err := s.Sweep(storeMaxAge); err != nil {
		return nil, fmt.Errorf("export store: %w", err)
	}
	return s, nil
}

// mergeNote is what the "built" line says about a merge.
func mergeNote(r llb.Result) string {
	if s := r.ExporterResponse[export.MergeSummaryKey]; s != "" {
		return " (merged " + s + ")"
	}
	return ""
}
