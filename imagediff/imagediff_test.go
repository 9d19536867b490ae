package imagediff

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// image is a two-layer image: base, then top's files, with label and
// annotation version.
func image(t *testing.T, top map[string][]byte, label, version string) v1.Image {
	t.Helper()
	var img v1.Image = empty.Image
	for i, files := range []map[string][]byte{{"base": []byte("b")}, top} {
		l, err := crane.Layer(files)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: []string{"base", "top: root.yml"}[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Labels = map[string]string{"l": label}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return mutate.Annotations(img, map[string]string{"v": version}).(v1.Image)
}

// Images names the annotation, the config field and the one layer that
// differ, and in that layer the differing files alone, first by name;
// Write prints as many paths per layer as asked. An image does not
// differ from itself.
func TestImages(t *testing.T) {
	a := image(t, map[string][]byte{"same": []byte("s"), "b-file": []byte("1"), "a-file": []byte("1")}, "x", "1")
	b := image(t, map[string][]byte{"same": []byte("s"), "b-file": []byte("2"), "a-file": []byte("2")}, "y", "2")
	d, err := Images(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Annotations, ",") != "v" || strings.Join(d.Config, ",") != "config.Labels" || len(d.Layers) != 1 {
		t.Fatalf("annotations %q, config %q, layers %+v", d.Annotations, d.Config, d.Layers)
	}
	l := d.Layers[0]
	if l.Index != 1 || l.History != "top: root.yml" || len(l.Paths) != 2 || l.Paths[0].Name != "a-file" || l.Paths[1].Name != "b-file" {
		t.Errorf("layer %+v", l)
	}
	var sb strings.Builder
	d.Write(&sb, "", 1)
	if got := sb.String(); !strings.Contains(got, "layer 1 (top: root.yml): ") || !strings.Contains(got, "2 path(s) differ\n  a-file: ") || strings.Contains(got, "b-file") {
		t.Errorf("Write with one path per layer:\n%s", got)
	}
	if d, err := Images(a, a); err != nil || !d.Empty() {
		t.Errorf("an image against itself: %+v, %v", d, err)
	}
}

// Manifests lists the platform images of an index, not the attestation
// manifests (platform unknown/unknown), with normalized platform names.
func TestManifests(t *testing.T) {
	img := image(t, map[string][]byte{"f": []byte("1")}, "x", "1")
	att := image(t, map[string][]byte{"statement": []byte("{}")}, "x", "1")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"}}})
	ms, err := Manifests(idx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if len(ms) != 1 || ms[0].Platform != "linux/arm64" || ms[0].Digest != want {
		t.Errorf("manifests %+v, want the image alone as linux/arm64", ms)
	}
}
