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
