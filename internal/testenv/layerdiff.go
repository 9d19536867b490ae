package testenv

import (
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/overthink/ov/imagediff"
)

// LayerDiff says how the image for platform ("" when there is only one)
// differs between the OCI layouts a and b (imagediff): the annotations
// and config fields, and per layer that differs up to 20 of its entries
// whose header (mtime included) or content differ. For a
// reproducibility test's failure message.
func LayerDiff(a, b, platform string) string {
	imgs := make([]v1.Image, 2)
	for i, dir := range []string{a, b} {
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			return err.Error()
		}
		if imgs[i], err = FindImage(idx, platform); err != nil {
			return err.Error()
		}
	}
	d, err := imagediff.Images(imgs[0], imgs[1])
	if err != nil {
		return err.Error()
	}
	var sb strings.Builder
	d.Write(&sb, "", 20)
	return sb.String()
}
