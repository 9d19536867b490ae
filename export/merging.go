package export

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/merge"
	"github.com/overthink/ov/plan"
)

// MergeSummaryKey is the ExporterResponse entry (see llb.Result) in which
// Merging reports what it did, one "<platform>: N -> M layers" per image,
// comma-separated.
const MergeSummaryKey = "ov.merge"

// Merging merges consecutive small layers of each image (package merge)
// between BuildKit's export and the destinations, so what dests push, load
// or write is already merged: BuildKit writes the image as an OCI layout into
// a temp directory, Commit merges every platform's image as merge.Plan groups
// it (the sizes are BuildKit's compressed blobs) with the limit maxBytes(img),
// and hands the rewritten index to each destination. An image whose limit is
// 0 is exported by dests directly, unmerged.
//
// Temp data lives next to the first layout or archive destination (so
// unchanged blobs are hard-linked, not copied), else in os.TempDir(), and is
// removed on success, failure and cancellation.
func Merging(maxBytes func(img *plan.Image) int64, dests ...Dest) Exporter {
	return MergingOr(maxBytes, Multi(dests...), dests...)
}

// MergingOr is Merging that exports the images it does not merge with
// unmerged (Multi of dests, or Encoding to them).
func MergingOr(maxBytes func(img *plan.Image) int64, unmerged Exporter, dests ...Dest) Exporter {
	return &merging{maxBytes: maxBytes, unmerged: unmerged, dests: dests}
}

type merging struct {
	maxBytes func(*plan.Image) int64
	unmerged Exporter
	dests    []Dest

	// Groups merged for one image are reused by the others exporting at
	// the same time (a family's children repeat their parent's groups);
	// the shared layers go when the last of them is done.
	mu     sync.Mutex
	active int
	shared *merge.Shared
}

// acquire returns the shared merges, made on first use.
func (m *merging) acquire(dir string) (*merge.Shared, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shared == nil {
		s, err := merge.NewShared(dir)
		if err != nil {
			return nil, err
		}
		m.shared = s
	}
	m.active++
	return m.shared, nil
}

func (m *merging) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active--; m.active == 0 && m.shared != nil {
		m.shared.Close()
		m.shared = nil
	}
}

func (m *merging) Prepare(ctx context.Context, img *plan.Image, ps []ocispecs.Platform) (Export, error) {
	max := m.maxBytes(img)
	if max <= 0 {
		return m.unmerged.Prepare(ctx, img, ps)
	}
	if len(m.dests) == 0 {
		return nil, errors.New("merge: no destination")
	}
	x := &mergeExport{img: img, max: max, uncompressed: true}
	scratch := ""
	for _, d := range m.dests {
		if err := d.Check(img, ps); err != nil {
			return nil, err
		}
		if _, ok := d.(load); !ok {
			x.uncompressed = false // only `docker load` does without gzip
		}
		if scratch == "" {
			scratch = d.Scratch(img)
		}
	}
	x.dests = m.dests
	if scratch != "" {
		if err := os.MkdirAll(scratch, 0o755); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(scratch, ".ov-merge-"+img.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if x.shared, err = m.acquire(scratch); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	x.release = m.release
	x.dir, x.src = dir, filepath.Join(dir, "export")
	if err := os.Mkdir(x.src, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("merge: %w", err)
	}
	x.entry = client.ExportEntry{
		Type:      client.ExporterOCI,
		Attrs:     map[string]string{"name": tagNames(img), "tar": "false"},
		OutputDir: x.src,
	}
	if x.uncompressed {
		// Only an engine load follows: plain tar spares gunzip on both
		// merge passes, and the load takes it as is.
		x.entry.Attrs["compression"] = "uncompressed"
	}
	return x, nil
}

type mergeExport struct {
	img          *plan.Image
	max          int64
	uncompressed bool
	dests        []Dest
	dir, src     string // all temp data; the unmerged layout BuildKit writes
	entry        client.ExportEntry
	shared       *merge.Shared
	release      func()
	once         sync.Once
}

func (x *mergeExport) Entries() []client.ExportEntry { return []client.ExportEntry{x.entry} }

func (x *mergeExport) Commit(ctx context.Context, resp *client.SolveResponse) error {
	defer x.Abort()
	idx, err := layout.ImageIndexFromPath(x.src)
	if err != nil {
		return fmt.Errorf("merge: reading the export: %w", err)
	}
	opts := []merge.Option{merge.WithTempDir(x.dir), merge.WithShared(x.shared)}
	if x.uncompressed {
		opts = append(opts, merge.WithoutCompression())
	}
	im := &indexMerger{max: x.max, opts: opts, done: map[v1.Hash]v1.Image{}}
	done := phase(ctx, "merging layers")
	merged, err := im.index(ctx, idx)
	done(err)
	if err != nil {
		return err
	}
	if err := deliver(ctx, x.dests, x.img, merged, x.src); err != nil {
		return err
	}
	if resp != nil {
		if resp.ExporterResponse == nil {
			resp.ExporterResponse = map[string]string{}
		}
		if err := describe(resp.ExporterResponse, merged); err != nil {
			return err
		}
		resp.ExporterResponse[MergeSummaryKey] = strings.Join(im.summary, ", ")
	}
	return nil
}

func (x *mergeExport) Abort() {
	os.RemoveAll(x.dir)
	x.once.Do(x.release)
}
