package export

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/overthink/ov/plan"
)

// Encoding exports each image with its own layers encoded by ov rather
// than by BuildKit, then hands it to dests (as Merging does, through
// Dest.Deliver). BuildKit exports the image into store with the layers it
// has no blob for yet uncompressed, and nothing else done to them; ov then
// writes each layer that is not its base image's as Encoding's encoding
// says: its times clamped to the image's epoch, gzip (none for an engine
// load only). An encoding is kept in store, by the layer's diffID and the
// epoch, so a layer is encoded once per epoch, however many images and
// builds carry it.
//
// BuildKit compresses with one core per layer at the standard library's
// speed, and with an epoch converts every layer of the image again at every
// export (rewrite-timestamp keeps nothing). Encoding trades that for
// sending the new layers to ov uncompressed: a local copy with a buildkitd
// on the same host, the only one ov uses it with.
func Encoding(store *Store, dests ...Dest) Exporter {
	return &encodingExp{store: store, dests: dests}
}

type encodingExp struct {
	store *Store
	dests []Dest
}

// BaseLayers is an Export that needs to know which layers of the image are
// its base image's (the base's diffIDs by platforms.FormatAll); llb.Build
// says so after the solve, before Commit.
type BaseLayers interface {
	SetBaseLayers(map[string][]v1.Hash)
}

func (e *encodingExp) Prepare(_ context.Context, img *plan.Image, ps []ocispecs.Platform) (Export, error) {
	if len(e.dests) == 0 {
		return nil, errors.New("export: no destination")
	}
	enc := encoding{Uncompressed: true}
	for _, d := range e.dests {
		if err := d.Check(img, ps); err != nil {
			return nil, err
		}
		if _, ok := d.(load); !ok {
			enc.Uncompressed = false // only `docker load` does without gzip
		}
	}
	if ep := img.Epoch; ep != nil && !ep.Now {
		t := time.Unix(ep.Unix, 0).UTC()
		enc.Epoch = &t
	}
	return &encodeExport{exp: e, img: img, enc: enc, entry: client.ExportEntry{
		Type: client.ExporterOCI,
		Attrs: map[string]string{
			"name":        tagNames(img),
			"tar":         "false",
			"compression": "uncompressed",
			// ov clamps the times itself (see llb.ExportAttrs).
			string(exptypes.OptKeyRewriteTimestamp): "false",
		},
		OutputStore: e.store.cs,
	}}, nil
}

type encodeExport struct {
	exp   *encodingExp
	img   *plan.Image
	enc   encoding
	entry client.ExportEntry
	base  map[string][]v1.Hash
	tmp   []string
}

func (x *encodeExport) Entries() []client.ExportEntry           { return []client.ExportEntry{x.entry} }
func (x *encodeExport) SetBaseLayers(base map[string][]v1.Hash) { x.base = base }

func (x *encodeExport) Abort() {
	for _, d := range x.tmp {
		os.RemoveAll(d)
	}
	x.tmp = nil
}

func (x *encodeExport) Commit(ctx context.Context, resp *client.SolveResponse) error {
	defer x.Abort()
	if resp == nil {
		return errors.New("export: BuildKit said nothing of the export")
	}
	desc, err := exportedRoot(resp.ExporterResponse)
	if err != nil {
		return err
	}
	in, err := x.layoutOf(desc)
	if err != nil {
		return err
	}
	idx, err := layout.ImageIndexFromPath(in)
	if err != nil {
		return fmt.Errorf("export: reading BuildKit's export: %w", err)
	}
	enc := &imageEncoder{store: x.exp.store, enc: x.enc, base: x.base, done: map[v1.Hash]v1.Image{}}
	done := phase(ctx, "encoding layers")
	out, err := rewriteIndex(ctx, idx, indexRewrite{image: enc.image, attestation: resubject})
	var src string
	if err == nil {
		src, err = x.linked(out)
	}
	done(err)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := deliver(ctx, x.exp.dests, x.img, out, src); err != nil {
		return err
	}
	return describe(resp.ExporterResponse, out)
}

// exportedRoot is the descriptor of what BuildKit's OCI exporter wrote.
func exportedRoot(resp map[string]string) (ocispecs.Descriptor, error) {
	var d ocispecs.Descriptor
	b, err := base64.StdEncoding.DecodeString(resp[exptypes.ExporterImageDescriptorKey])
	if err == nil {
		err = json.Unmarshal(b, &d)
	}
	if err != nil || d.Digest == "" {
		return d, fmt.Errorf("export: BuildKit's export names no image (%v)", err)
	}
	return d, nil
}

// layoutOf is a temp OCI layout of desc, its blobs the store's: how ggcr
// reads what BuildKit wrote into the store. Its index lists desc once per
// tag, named as BuildKit's OCI exporter names them in a layout.
func (x *encodeExport) layoutOf(desc ocispecs.Descriptor) (string, error) {
	dir, err := x.tempDir()
	if err != nil {
		return "", err
	}
	if err := os.Symlink(filepath.Join(x.exp.store.dir, "blobs"), filepath.Join(dir, "blobs")); err != nil {
		return "", err
	}
	idx, err := json.Marshal(ocispecs.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispecs.MediaTypeImageIndex,
		Manifests: x.named(desc),
	})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
}

func (x *encodeExport) named(desc ocispecs.Descriptor) []ocispecs.Descriptor {
	if len(x.img.Tags) == 0 {
		return []ocispecs.Descriptor{desc}
	}
	if desc.Annotations == nil {
		desc.Annotations = map[string]string{}
	}
	return renamed(desc, x.img.Tags)
}

// linked is a temp OCI layout of idx whose layer blobs are hard links into
// the store, for destinations that write files (Deliver's src).
func (x *encodeExport) linked(idx v1.ImageIndex) (string, error) {
	dir, err := x.tempDir()
	if err != nil {
		return "", err
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return "", err
	}
	err = walkBlobs(idx, func(h v1.Hash) {
		if fi, err := os.Lstat(x.exp.store.blobPath(h)); err == nil && fi.Mode().IsRegular() {
			os.Link(x.exp.store.blobPath(h), filepath.Join(blobs, h.Hex)) // else layout.Write copies it
		}
	})
	if err != nil {
		return "", err
	}
	if _, err := layout.Write(dir, idx); err != nil {
		return "", fmt.Errorf("export: %w", err)
	}
	return dir, nil
}

func (x *encodeExport) tempDir() (string, error) {
	dir, err := os.MkdirTemp(filepath.Join(x.exp.store.dir, "encoded"), exportTemp)
	if err != nil {
		return "", fmt.Errorf("export: %w", err)
	}
	x.tmp = append(x.tmp, dir)
	return dir, nil
}

// walkBlobs calls fn with the digest of every layer of every image in idx.
func walkBlobs(idx v1.ImageIndex, fn func(v1.Hash)) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := walkBlobs(sub, fn); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			m, err := img.Manifest()
			if err != nil {
				return err
			}
			for _, l := range m.Layers {
				fn(l.Digest)
			}
		}
	}
	return nil
}

// imageEncoder encodes the own layers of each image of an export.
type imageEncoder struct {
	store *Store
	enc   encoding
	base  map[string][]v1.Hash

	mu   sync.Mutex
	done map[v1.Hash]v1.Image // an index lists an image once per tag
}

func (e *imageEncoder) image(ctx context.Context, img v1.Image, d v1.Descriptor) (v1.Image, error) {
	e.mu.Lock()
	out, ok := e.done[d.Digest]
	e.mu.Unlock()
	if ok {
		return out, nil
	}
	out, err := e.encode(ctx, img)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.done[d.Digest] = out
	e.mu.Unlock()
	return out, nil
}

// encode is img with its own layers encoded (in parallel, a core each) and
// its config's diffIDs theirs; the base image's layers are kept as they
// are, as BuildKit keeps them (the leading layers whose diffIDs are the
// base's).
func (e *imageEncoder) encode(ctx context.Context, img v1.Image) (v1.Image, error) {
	mf, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(mf.Layers) {
		return nil, fmt.Errorf("image %s: %d layers, %d diffIDs", mf.Config.Digest, len(mf.Layers), len(cfg.RootFS.DiffIDs))
	}
	p := platforms.Normalize(ocispecs.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	base := e.base[platforms.FormatAll(p)]
	nBase := 0
	for nBase < len(base) && nBase < len(mf.Layers) && cfg.RootFS.DiffIDs[nBase] == base[nBase] {
		nBase++
	}

	adds := make([]mutate.Addendum, len(mf.Layers))
	diffIDs := slices.Clone(cfg.RootFS.DiffIDs)
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for i, l := range mf.Layers {
		e.store.used(l.Digest)
		if i < nBase {
			adds[i] = mutate.Addendum{Layer: e.storeLayer(l, cfg.RootFS.DiffIDs[i]), Annotations: l.Annotations, URLs: l.URLs, MediaType: l.MediaType}
			continue
		}
		eg.Go(func() error {
			b, err := e.store.once(gctx, e.enc.key(cfg.RootFS.DiffIDs[i]), func() (encodedBlob, error) {
				return e.store.encodeLayer(gctx, l, e.enc)
			})
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i+1, l.Digest, err)
			}
			d := l
			d.Digest, d.Size, d.MediaType = b.Digest, b.Size, e.enc.mediaType(mf.MediaType)
			adds[i] = mutate.Addendum{Layer: e.storeLayer(d, b.DiffID), Annotations: l.Annotations, URLs: l.URLs, MediaType: d.MediaType}
			diffIDs[i] = b.DiffID
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return rebuilt(mf, cfg, adds, diffIDs)
}

// rebuilt is the image of manifest mf with layers adds and config cfg,
// whose diffIDs become diffIDs: media types and annotations kept.
func rebuilt(mf *v1.Manifest, cfg *v1.ConfigFile, adds []mutate.Addendum, diffIDs []v1.Hash) (v1.Image, error) {
	out, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, mf.MediaType), mf.Config.MediaType), adds...)
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs = diffIDs
	if out, err = mutate.ConfigFile(out, cfg); err != nil {
		return nil, err
	}
	if len(mf.Annotations) > 0 {
		out = mutate.Annotations(out, mf.Annotations).(v1.Image)
	}
	return out, nil
}

func (e *imageEncoder) storeLayer(d v1.Descriptor, diffID v1.Hash) v1.Layer {
	return &storeLayer{store: e.store, desc: d, diffID: diffID}
}

// storeLayer is a layer blob in the store, its hashes known.
type storeLayer struct {
	store  *Store
	desc   v1.Descriptor
	diffID v1.Hash
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storeLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *storeLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error)  { return l.store.openBlob(l.desc.Digest) }
func (l *storeLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := l.store.openBlob(l.desc.Digest)
	if err != nil {
		return nil, err
	}
	r, err := decompress(f, l.desc.MediaType)
	if err != nil {
		f.Close()
		return nil, err
	}
	return readCloser{r, f}, nil
}

type readCloser struct {
	io.Reader
	f *os.File
}

func (r readCloser) Close() error { return r.f.Close() }

// resubject is the attestation att with each in-toto statement's subject
// digest old (the image before encoding) replaced by image.
func resubject(_ context.Context, att v1.Image, old, image v1.Hash) (v1.Image, error) {
	mf, err := att.Manifest()
	if err != nil {
		return nil, err
	}
	layers, err := att.Layers()
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, len(layers))
	diffIDs := make([]v1.Hash, len(layers))
	for i, l := range layers {
		r, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, err
		}
		if b, err = resubjectStatement(b, old, image); err != nil {
			return nil, fmt.Errorf("attestation %s: %w", mf.Config.Digest, err)
		}
		d := mf.Layers[i]
		nl := static.NewLayer(b, d.MediaType)
		adds[i] = mutate.Addendum{Layer: nl, Annotations: d.Annotations, MediaType: d.MediaType}
		if diffIDs[i], err = nl.DiffID(); err != nil {
			return nil, err
		}
	}
	cfg, err := att.ConfigFile()
	if err != nil {
		return nil, err
	}
	return rebuilt(mf, cfg, adds, diffIDs)
}

// resubjectStatement replaces the subject digest old by image in one
// in-toto statement, leaving the rest of it as it was.
func resubjectStatement(b []byte, old, image v1.Hash) ([]byte, error) {
	var st map[string]json.RawMessage
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	var subjects []map[string]any
	if err := json.Unmarshal(st["subject"], &subjects); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	for _, s := range subjects {
		if d, ok := s["digest"].(map[string]any); ok && d[old.Algorithm] == old.Hex {
			d[old.Algorithm] = image.Hex
		}
	}
	sb, err := json.Marshal(subjects)
	if err != nil {
		return nil, err
	}
	st["subject"] = sb
	return json.Marshal(st)
}
