package export

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/plan"
)

// Push pushes each image to its registry under all its tags. Registry
// credentials come from the session (the docker config, see llb.Build).
func Push() Dest { return push{} }

type push struct{}

func (p push) Prepare(_ context.Context, img *plan.Image, ps []ocispecs.Platform) (Export, error) {
	if err := p.Check(img, ps); err != nil {
		return nil, err
	}
	return entryExport{client.ExportEntry{
		Type:  client.ExporterImage,
		Attrs: map[string]string{"name": tagNames(img), "push": "true"},
	}}, nil
}

func (push) Check(img *plan.Image, _ []ocispecs.Platform) error {
	if len(img.Tags) == 0 {
		return fmt.Errorf("image %q has no tags to push", img.Name)
	}
	return nil
}

func (push) Scratch(*plan.Image) string { return "" }

func (push) Describe(img *plan.Image) string { return "pushing " + strings.Join(img.Tags, ", ") }

// Deliver pushes the image (or multi-platform index) under every tag, with
// the docker config's credentials, as BuildKit's push does. Loopback
// registries are spoken to over plain HTTP.
func (push) Deliver(ctx context.Context, img *plan.Image, idx v1.ImageIndex, _ string) error {
	t, err := root(idx)
	if err != nil {
		return err
	}
	p, err := remote.NewPusher(remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx), remote.WithUserAgent("ov"))
	if err != nil {
		return err
	}
	if from := mountSource(img); from != nil {
		t = mountFrom(t, from)
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

// Holds checks each tag with a HEAD request. A tag that is missing or
// names something else, in a repository that still has digest, is pointed
// at it (a manifest PUT, no blobs); a repository without digest means a
// push.
func (push) Holds(ctx context.Context, img *plan.Image, built Built) (bool, error) {
	digest := built.Digest
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx), remote.WithUserAgent("ov")}
	for _, tag := range img.Tags {
		ref, err := name.ParseReference(tag)
		if err != nil {
			return false, fmt.Errorf("push %s: %w", tag, err)
		}
		if d, err := remote.Head(ref, opts...); err == nil && d.Digest.String() == digest {
			continue
		}
		desc, err := remote.Get(ref.Context().Digest(digest), opts...)
		if err != nil {
			return false, nil // not there (or not readable): push
		}
		t, ok := ref.(name.Tag)
		if !ok {
			return false, nil
		}
		if err := remote.Tag(t, desc, opts...); err != nil {
			return false, nil
		}
	}
	return true, nil
}

// mountSource is the repository a push of img can mount the blobs it
// shares with its base from, as BuildKit's push does: the parent's (pushed
// before its children, see llb.BuildOptions.WaitForParents), else the
// external base's. A registry without the blob there, or another
// registry, gets it uploaded.
func mountSource(img *plan.Image) name.Reference {
	base := img.External
	if img.Parent != "" {
		base = img.ParentRef
	}
	ref, err := name.ParseReference(base)
	if err != nil || base == "" {
		return nil
	}
	return ref
}

// mountFrom is t with every layer of every image mountable from from.
func mountFrom(t remote.Taggable, from name.Reference) remote.Taggable {
	switch x := t.(type) {
	case v1.ImageIndex:
		return mountableIndex{x, from}
	case v1.Image:
		return mountableImage{x, from}
	}
	return t
}

type mountableIndex struct {
	anIndex
	from name.Reference
}

func (m mountableIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.anIndex.Image(h)
	if err != nil {
		return nil, err
	}
	return mountableImage{img, m.from}, nil
}

func (m mountableIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := m.anIndex.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return mountableIndex{idx, m.from}, nil
}

type mountableImage struct {
	anImage
	from name.Reference
}

func (m mountableImage) Layers() ([]v1.Layer, error) {
	ls, err := m.anImage.Layers()
	for i, l := range ls {
		ls[i] = &remote.MountableLayer{Layer: l, Reference: m.from}
	}
	return ls, err
}

func (m mountableImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.anImage.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &remote.MountableLayer{Layer: l, Reference: m.from}, nil
}
