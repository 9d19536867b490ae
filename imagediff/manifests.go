package imagediff

import (
	"fmt"
	"io"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest is one platform's image manifest.
type Manifest struct {
	Platform string // normalized: "linux/arm64"
	Digest   v1.Hash
	Image    v1.Image
}

// Manifests are the platform images of idx and the indexes it nests, in
// order: not the attestation manifests (platform unknown/unknown), whose
// provenance records the build's times.
func Manifests(idx v1.ImageIndex) ([]Manifest, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			more, err := Manifests(child)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		case d.MediaType.IsImage() && !attestation(d):
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			m, err := Of(img)
			if err != nil {
				return nil, err
			}
			if d.Platform != nil {
				m.Platform = platformName(*d.Platform)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// Of is img as a Manifest, its platform from its config.
func Of(img v1.Image) (Manifest, error) {
	d, err := img.Digest()
	if err != nil {
		return Manifest{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Manifest{}, err
	}
	p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	return Manifest{Platform: platformName(p), Digest: d, Image: img}, nil
}

// platformName is p as containerd formats it normalized: linux/arm64,
// whether a tool wrote its variant v8 or not.
func platformName(p v1.Platform) string {
	return platforms.Format(platforms.Normalize(ocispecs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}))
}

func attestation(d v1.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" ||
		d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

// Write prints d, one line per difference: per layer at most paths of
// the paths that differ (the first ones by name), and how many there are.
func (d Diff) Write(w io.Writer, indent string, paths int) {
	for _, k := range d.Annotations {
		fmt.Fprintf(w, "%sannotation %s differs\n", indent, k)
	}
	if len(d.Config) > 0 {
		fmt.Fprintf(w, "%sconfig differs: %s\n", indent, strings.Join(d.Config, ", "))
	}
	if d.LayerCounts != [2]int{} {
		fmt.Fprintf(w, "%s%d layers, then %d\n", indent, d.LayerCounts[0], d.LayerCounts[1])
	}
	for _, l := range d.Layers {
		what := ""
		if l.History != "" {
			what = fmt.Sprintf(" (%s)", short(l.History))
		}
		fmt.Fprintf(w, "%slayer %d%s: %s, then %s: %d path(s) differ\n", indent, l.Index, what, l.A, l.B, len(l.Paths))
		for _, p := range l.Paths[:min(paths, len(l.Paths))] {
			fmt.Fprintf(w, "%s  %s: %s, then %s\n", indent, p.Name, orAbsent(p.A), orAbsent(p.B))
		}
	}
}

func orAbsent(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}

// short is a history entry cut to one short line.
func short(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
