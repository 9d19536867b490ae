package plan

import (
	"strings"
	"time"

	"github.com/distribution/reference"
)

// Origin is where a project's source lives, for the images' annotations.
type Origin struct {
	Source   string // the repository's URL, without credentials; "" unknown
	Revision string // the commit of the inputs; "" unless a clean git checkout
}

// Keys of what an image says about itself (README: self-describing images).
const (
	KeyCreated  = "org.opencontainers.image.created"
	KeySource   = "org.opencontainers.image.source"
	KeyRevision = "org.opencontainers.image.revision"
	KeyVersion  = "org.opencontainers.image.version"
	KeyTitle    = "org.opencontainers.image.title"
	KeyLayers   = "dev.overthink.layers" // the image's own layers in install order, comma-separated
	KeyParent   = "dev.overthink.parent" // the reference the image is built on
)

// describe sets img's labels and annotations. The labels (in the image
// config, so in its digest) are what images.yml alone decides: the title,
// the layers and the parent. The annotations (in the manifest) repeat them
// and add what changes with the checkout or the run: the epoch, the
// repository, the commit and the version (the tag; a CalVer one is the
// run's time). A label that changed with every commit would change every
// image's config, and so its ID, on every commit.
func (img *Image) describe(o Origin) {
	img.Labels = map[string]string{KeyTitle: img.Name, KeyLayers: "", KeyParent: img.ParentRef}
	if img.Spec != nil {
		img.Labels[KeyLayers] = strings.Join(img.Spec.Install, ",")
	}
	if img.Parent == "" {
		img.Labels[KeyParent] = img.External
	}
	img.Annotations = map[string]string{}
	for k, v := range img.Labels {
		img.Annotations[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			img.Annotations[k] = v
		}
	}
	if img.Epoch != nil && !img.Epoch.Now {
		set(KeyCreated, time.Unix(img.Epoch.Unix, 0).UTC().Format(time.RFC3339))
	}
	set(KeySource, o.Source)
	set(KeyRevision, o.Revision)
	if len(img.Tags) > 0 {
		if t, err := reference.ParseNormalizedNamed(img.Tags[0]); err == nil {
			if tagged, ok := t.(reference.Tagged); ok {
				set(KeyVersion, tagged.Tag())
			}
		}
	}
}
