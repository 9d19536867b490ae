package export

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/merge"
)

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
	out, err := rewriteIndex(ctx, idx, indexRewrite{image: m.image})
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return out, nil
}

// indexRewrite says how rewriteIndex rewrites an index's images.
type indexRewrite struct {
	// image rewrites the image of descriptor d.
	image func(ctx context.Context, img v1.Image, d v1.Descriptor) (v1.Image, error)
	// attestation rewrites the attestation manifest att of an image whose
	// digest became image; nil drops such attestations.
	attestation func(ctx context.Context, att v1.Image, old, image v1.Hash) (v1.Image, error)
}

// rewriteIndex returns idx with its images rewritten by rw, descriptors
// (platform, annotations) otherwise kept; attestations follow their images.
func rewriteIndex(ctx context.Context, idx v1.ImageIndex, rw indexRewrite) (v1.ImageIndex, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	changed := map[string]v1.Hash{} // image digests rewritten: the old one to the new
	adds := make([]*mutate.IndexAddendum, len(im.Manifests))
	for i, d := range im.Manifests {
		var out mutate.Appendable
		switch {
		case d.Annotations[refType] != "":
			continue // after the images they refer to
		case d.MediaType.IsIndex():
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if out, err = rewriteIndex(ctx, sub, rw); err != nil {
				return nil, err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			if out, err = rw.image(ctx, img, d); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("cannot carry a %s (%s) into the rewritten index", d.MediaType, d.Digest)
		}
		a, err := addendum(out, d)
		if err != nil {
			return nil, err
		}
		if h, _ := out.Digest(); h != d.Digest {
			changed[d.Digest.String()] = h
		}
		adds[i] = a
	}
	for i, d := range im.Manifests {
		if d.Annotations[refType] == "" {
			continue
		}
		to, moved := changed[d.Annotations[refDigest]]
		if moved && rw.attestation == nil {
			continue
		}
		if !d.MediaType.IsImage() {
			return nil, fmt.Errorf("cannot carry a %s (%s) into the rewritten index", d.MediaType, d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		var out v1.Image = img
		if moved {
			old, err := v1.NewHash(d.Annotations[refDigest])
			if err != nil {
				return nil, fmt.Errorf("attestation %s: %w", d.Digest, err)
			}
			if out, err = rw.attestation(ctx, img, old, to); err != nil {
				return nil, err
			}
			d.Annotations = maps.Clone(d.Annotations)
			d.Annotations[refDigest] = to.String()
		}
		if adds[i], err = addendum(out, d); err != nil {
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
