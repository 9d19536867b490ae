package llb

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/merge"
	"github.com/overthink/ov/plan"
)

// MergeSummaryKey is the ExporterResponse entry (see Result) in which
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
// dests are OCILayout, OCILayoutAt, OCIArchive, Push, Load and Multi of
// them. Temp data lives next to the first layout or archive destination (so
// unchanged blobs are hard-linked, not copied), else in os.TempDir(), and is
// removed on success, failure and cancellation.
func Merging(maxBytes func(img *plan.Image) int64, dests ...Exporter) Exporter {
	return &merging{maxBytes: maxBytes, dests: flattenMulti(dests)}
}

func flattenMulti(exps []Exporter) []Exporter {
	var out []Exporter
	for _, e := range exps {
		if m, ok := e.(multi); ok {
			out = append(out, flattenMulti(m)...)
		} else {
			out = append(out, e)
		}
	}
	return out
}

// indexDest is a destination that takes a finished image index instead of
// a BuildKit export.
type indexDest interface {
	// check rejects what Prepare would reject.
	check(img *plan.Image, ps []ocispecs.Platform) error
	// scratch is a directory on the destination's filesystem for temp data,
	// "" when it has none.
	scratch(img *plan.Image) string
	// deliver publishes idx. Its unchanged blobs are also in the OCI layout
	// at src, for hard links.
	deliver(ctx context.Context, img *plan.Image, idx v1.ImageIndex, src string) error
}

type merging struct {
	maxBytes func(*plan.Image) int64
	dests    []Exporter

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
		return Multi(m.dests...).Prepare(ctx, img, ps)
	}
	if len(m.dests) == 0 {
		return nil, errors.New("merge: no destination")
	}
	x := &mergeExport{img: img, max: max, uncompressed: true}
	scratch := ""
	for _, e := range m.dests {
		d, ok := e.(indexDest)
		if !ok {
			return nil, fmt.Errorf("merge: exporter %T cannot take a merged image", e)
		}
		if err := d.check(img, ps); err != nil {
			return nil, err
		}
		if _, ok := d.(load); !ok {
			x.uncompressed = false // only `docker load` does without gzip
		}
		if scratch == "" {
			scratch = d.scratch(img)
		}
		x.dests = append(x.dests, d)
	}
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
	dests        []indexDest
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
	merged, err := im.index(ctx, idx)
	if err != nil {
		return err
	}
	for _, d := range x.dests {
		if err := d.deliver(ctx, x.img, merged, x.src); err != nil {
			return err
		}
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

// indexMerger rewrites an index with every image in it merged.
type indexMerger struct {
	max     int64
	opts    []merge.Option
	done    map[v1.Hash]v1.Image // by unmerged manifest digest: an index lists one image once per tag
	summary []string
}

const (
	refType   = "vnd.docker.reference.type"
	refDigest = "vnd.docker.reference.digest"
)

// index returns idx with its images merged, descriptors (platform,
// annotations) otherwise kept. Attestations of a merged image are dropped:
// their statements name the unmerged image's digest.
func (m *indexMerger) index(ctx context.Context, idx v1.ImageIndex) (v1.ImageIndex, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	changed := map[string]bool{} // image digests the merge changed
	adds := make([]*mutate.IndexAddendum, len(im.Manifests))
	for i, d := range im.Manifests {
		var out mutate.Appendable
		switch {
		case d.Annotations[refType] != "":
			continue // after the images they refer to
		case d.MediaType.IsIndex():
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("merge: %w", err)
			}
			if out, err = m.index(ctx, sub); err != nil {
				return nil, err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("merge: %w", err)
			}
			if out, err = m.image(ctx, img, d); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("merge: cannot carry a %s (%s) into the merged index", d.MediaType, d.Digest)
		}
		a, err := addendum(out, d)
		if err != nil {
			return nil, err
		}
		if h, _ := out.Digest(); h != d.Digest {
			changed[d.Digest.String()] = true
		}
		adds[i] = a
	}
	for i, d := range im.Manifests {
		if d.Annotations[refType] == "" || changed[d.Annotations[refDigest]] {
			continue
		}
		if !d.MediaType.IsImage() {
			return nil, fmt.Errorf("merge: cannot carry a %s (%s) into the merged index", d.MediaType, d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		if adds[i], err = addendum(img, d); err != nil {
			return nil, err
		}
	}
	mt := im.MediaType
	if mt == "" {
		mt = types.OCIImageIndex
	}
	out := mutate.IndexMediaType(empty.Index, mt)
	if len(im.Annotations) > 0 {
		out = mutate.Annotations(out, im.Annotations).(v1.ImageIndex)
	}
	var list []mutate.IndexAddendum
	for _, a := range adds {
		if a != nil {
			list = append(list, *a)
		}
	}
	return mutate.AppendManifests(out, list...), nil
}

// described is an image or index whose descriptor in the new index is the
// old one with the new digest and size: no fields added (partial.Descriptor
// would add artifactType), none lost.
type described struct{ desc v1.Descriptor }

func (d described) Descriptor() (*v1.Descriptor, error) { desc := d.desc; return &desc, nil }

// Pointers, as images are map keys (tarball.MultiRefWrite). Aliases name
// the embedded fields: a field named ImageIndex would hide
// the method of that name.
type (
	anImage = v1.Image
	anIndex = v1.ImageIndex
)

type describedImage struct {
	anImage
	described
}

type describedIndex struct {
	anIndex
	described
}

var (
	_ v1.Image      = (*describedImage)(nil)
	_ v1.ImageIndex = (*describedIndex)(nil)
)

func addendum(a mutate.Appendable, old v1.Descriptor) (*mutate.IndexAddendum, error) {
	desc := old
	desc.Data = nil
	var err error
	if desc.Digest, err = a.Digest(); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if desc.Size, err = a.Size(); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	d := described{desc}
	switch x := a.(type) {
	case v1.Image:
		return &mutate.IndexAddendum{Add: &describedImage{x, d}}, nil
	case v1.ImageIndex:
		return &mutate.IndexAddendum{Add: &describedIndex{x, d}}, nil
	}
	return nil, fmt.Errorf("merge: unexpected %T in an index", a)
}

func (m *indexMerger) image(ctx context.Context, img v1.Image, d v1.Descriptor) (v1.Image, error) {
	if out, ok := m.done[d.Digest]; ok {
		return out, nil
	}
	merged, err := merge.Image(ctx, img, m.max, m.opts...)
	if err != nil {
		return nil, err
	}
	// merged's layer files live in the export's temp dir until it is removed.
	platform := "image"
	if d.Platform != nil {
		platform = d.Platform.String()
	} else if cf, err := img.ConfigFile(); err == nil {
		platform = cf.OS + "/" + cf.Architecture
	}
	n := 0
	for _, g := range merged.Groups {
		n += len(g.Layers)
	}
	m.summary = append(m.summary, fmt.Sprintf("%s: %d -> %d layers", platform, n, len(merged.Groups)))
	m.done[d.Digest] = merged.Image
	return merged.Image, nil
}

// describe updates BuildKit's description of the exported image (digest,
// descriptor, config digest) to the merged one.
func describe(resp map[string]string, idx v1.ImageIndex) error {
	root, err := rootDescriptor(idx)
	if err != nil {
		return err
	}
	resp[exptypes.ExporterImageDigestKey] = root.Digest.String()
	if root.MediaType.IsImage() {
		img, err := idx.Image(root.Digest)
		if err != nil {
			return err
		}
		if cd, err := img.ConfigName(); err == nil {
			resp[exptypes.ExporterImageConfigDigestKey] = cd.String()
		}
	} else {
		delete(resp, exptypes.ExporterImageConfigDigestKey)
	}
	if _, ok := resp[exptypes.ExporterImageDescriptorKey]; ok {
		var desc ocispecs.Descriptor
		if b, err := base64.StdEncoding.DecodeString(resp[exptypes.ExporterImageDescriptorKey]); err == nil && json.Unmarshal(b, &desc) == nil {
			desc.Digest, desc.Size, desc.MediaType = digest.Digest(root.Digest.String()), root.Size, string(root.MediaType)
			if b, err := json.Marshal(desc); err == nil {
				resp[exptypes.ExporterImageDescriptorKey] = base64.StdEncoding.EncodeToString(b)
				return nil
			}
		}
		delete(resp, exptypes.ExporterImageDescriptorKey)
	}
	return nil
}

// rootDescriptor is what the layout's index.json points at: BuildKit lists
// the image (or multi-platform index) once per tag.
func rootDescriptor(idx v1.ImageIndex) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if len(im.Manifests) == 0 {
		return v1.Descriptor{}, errors.New("merge: the export holds no image")
	}
	root := im.Manifests[0]
	for _, d := range im.Manifests[1:] {
		if d.Digest != root.Digest {
			return v1.Descriptor{}, fmt.Errorf("merge: the export holds several images (%s, %s)", root.Digest, d.Digest)
		}
	}
	return root, nil
}

// root is the image or index the layout's index.json points at.
func root(idx v1.ImageIndex) (remote.Taggable, error) {
	d, err := rootDescriptor(idx)
	if err != nil {
		return nil, err
	}
	if d.MediaType.IsIndex() {
		return idx.ImageIndex(d.Digest)
	}
	return idx.Image(d.Digest)
}

// writeLayout writes idx as an OCI layout at dir, hard-linking the blobs it
// shares with the layouts at from (which need not exist) instead of copying.
func writeLayout(dir string, idx v1.ImageIndex, from ...string) error {
	for _, f := range from {
		linkNew(f, dir)
	}
	if _, err := layout.Write(dir, idx); err != nil {
		return err
	}
	return pruneBlobs(dir)
}

// linkNew hard-links the blobs of the layout at from that dir lacks; it
// stops quietly where links don't work (another filesystem): the layout
// writer copies what is missing.
func linkNew(from, dir string) {
	algs, err := os.ReadDir(filepath.Join(from, "blobs"))
	if err != nil {
		return
	}
	for _, alg := range algs {
		blobs, err := os.ReadDir(filepath.Join(from, "blobs", alg.Name()))
		if err != nil || os.MkdirAll(filepath.Join(dir, "blobs", alg.Name()), 0o755) != nil {
			return
		}
		for _, b := range blobs {
			to := filepath.Join(dir, "blobs", alg.Name(), b.Name())
			if !b.Type().IsRegular() {
				continue
			}
			if _, err := os.Lstat(to); err == nil {
				continue
			}
			if os.Link(filepath.Join(from, "blobs", alg.Name(), b.Name()), to) != nil {
				return
			}
		}
	}
}

func (o ociLayout) check(*plan.Image, []ocispecs.Platform) error { return nil }
func (o ociLayout) scratch(img *plan.Image) string               { return filepath.Dir(o.path(img)) }

// deliver writes the layout next to its destination and renames it into
// place, as the BuildKit export does.
func (o ociLayout) deliver(_ context.Context, img *plan.Image, idx v1.ImageIndex, src string) error {
	dest := o.path(img)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return err
	}
	if err := writeLayout(tmp, idx, dest, src); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := replaceDir(tmp, dest); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("write %s: %w", dest, err)
	}
	return nil
}

func (o ociArchive) check(*plan.Image, []ocispecs.Platform) error { return nil }
func (o ociArchive) scratch(img *plan.Image) string               { return filepath.Dir(o.path(img)) }

// deliver writes the layout to a temp dir, tars it into a temp file and
// renames that into place.
func (o ociArchive) deliver(_ context.Context, img *plan.Image, idx v1.ImageIndex, src string) (err error) {
	dest := o.path(img)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "layout")
	if err := writeLayout(dir, idx, src); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	file := filepath.Join(tmp, "archive.tar")
	if err := tarDir(file, dir); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := os.Rename(file, dest); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	return nil
}

// tarDir writes the tree at dir as a tar file.
func tarDir(file, dir string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func (push) check(img *plan.Image, _ []ocispecs.Platform) error {
	if len(img.Tags) == 0 {
		return fmt.Errorf("image %q has no tags to push", img.Name)
	}
	return nil
}

func (push) scratch(*plan.Image) string { return "" }

// deliver pushes the image (or multi-platform index) under every tag, with
// the docker config's credentials, as BuildKit's push does. Loopback
// registries are spoken to over plain HTTP.
func (push) deliver(ctx context.Context, img *plan.Image, idx v1.ImageIndex, _ string) error {
	t, err := root(idx)
	if err != nil {
		return err
	}
	p, err := remote.NewPusher(remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx), remote.WithUserAgent("ov"))
	if err != nil {
		return err
	}
	for _, tag := range img.Tags {
		ref, err := name.ParseReference(tag)
		if err != nil {
			return fmt.Errorf("push %s: %w", tag, err)
		}
		if err := p.Push(ctx, ref, t); err != nil {
			return fmt.Errorf("push %s: %w", tag, err)
		}
	}
	return nil
}

func (l load) check(img *plan.Image, ps []ocispecs.Platform) error {
	if len(ps) != 1 {
		return fmt.Errorf("image %q: %s load takes one platform, not %d (use --platform)", img.Name, l.engine, len(ps))
	}
	return nil
}

func (load) scratch(*plan.Image) string { return "" }

// deliver streams the image into `<engine> load` as a docker archive
// carrying every tag; an interrupted stream loads nothing.
func (l load) deliver(ctx context.Context, img *plan.Image, idx v1.ImageIndex, _ string) error {
	t, err := root(idx)
	if err != nil {
		return err
	}
	image, ok := t.(v1.Image)
	if !ok {
		// One platform with attestations: the image beside them.
		sub := t.(v1.ImageIndex)
		im, err := sub.IndexManifest()
		if err != nil {
			return err
		}
		for _, d := range im.Manifests {
			if d.MediaType.IsImage() && d.Annotations[refType] == "" {
				if image != nil {
					return fmt.Errorf("%s load takes one platform", l.engine)
				}
				if image, err = sub.Image(d.Digest); err != nil {
					return err
				}
			}
		}
		if image == nil {
			return fmt.Errorf("%s load: the export holds no image", l.engine)
		}
	}
	return merge.Engine{Bin: l.engine, Flags: l.args}.Save(ctx, image, img.Tags...)
}
