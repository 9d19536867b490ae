package explain

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/overthink/ov/baseuser"
)

// ResolveBase resolves external base ref's digest and its manifest digest
// for each platform, trying ref's mirror (OV_REGISTRY_MIRRORS) first like
// baseuser. It never fails: an unreachable registry comes back as Base.Err.
func ResolveBase(ctx context.Context, ref string, plats []string) Base {
	refs, err := baseuser.Candidates(ref, baseuser.Options{})
	if err != nil {
		return Base{Err: err}
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	var errs []error
	for _, r := range refs {
		desc, err := remote.Get(r, ropts...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
			continue
		}
		b := Base{Digest: desc.Digest.String(), Platforms: map[string]string{}}
		if !desc.MediaType.IsIndex() {
			for _, p := range plats {
				b.Platforms[p] = b.Digest
			}
			return b
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return Base{Err: err}
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return Base{Err: err}
		}
		for _, p := range plats {
			b.Platforms[p] = pick(im, p)
		}
		return b
	}
	return Base{Err: errors.Join(errs...)}
}

// pick is the digest of the manifest for platform p in an index, "" when
// it has none.
func pick(im *v1.IndexManifest, p string) string {
	want, err := platforms.Parse(p)
	if err != nil {
		return ""
	}
	m := platforms.OnlyStrict(platforms.Normalize(want))
	for _, d := range im.Manifests {
		if d.Platform == nil || !d.MediaType.IsImage() {
			continue
		}
		have := platforms.Normalize(platforms.Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant})
		if m.Match(have) {
			return d.Digest.String()
		}
	}
	return ""
}
