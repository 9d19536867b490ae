package export

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/plan"
)

// OCILayout writes each image as an OCI image layout directory dir/<image>.
// The layout is written next to its destination and renamed into place when
// complete, replacing an older one.
func OCILayout(dir string) Dest {
	return OCILayoutAt(func(img *plan.Image) string { return filepath.Join(dir, img.Name) })
}

// OCILayoutAt writes each image as an OCI image layout directory path(img).
func OCILayoutAt(path func(img *plan.Image) string) Dest { return ociLayout{path: path} }

type ociLayout struct{ path func(*plan.Image) string }

func (o ociLayout) Prepare(_ context.Context, img *plan.Image, _ []ocispecs.Platform) (Export, error) {
	dest := o.path(img)
	tmp, err := tempDirBeside(dest)
	if err != nil {
		return nil, err
	}
	if err := linkBlobs(dest, tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &dirExport{dest: dest, tmp: tmp, entry: client.ExportEntry{
		Type:      client.ExporterOCI,
		Attrs:     map[string]string{"name": tagNames(img), "tar": "false"},
		OutputDir: tmp,
	}}, nil
}

type dirExport struct {
	dest, tmp string
	entry     client.ExportEntry
}

func (d *dirExport) Entries() []client.ExportEntry { return []client.ExportEntry{d.entry} }

func (d *dirExport) Commit(context.Context, *client.SolveResponse) error {
	if err := pruneBlobs(d.tmp); err != nil {
		return fmt.Errorf("write %s: %w", d.dest, err)
	}
	if err := replaceDir(d.tmp, d.dest); err != nil {
		return fmt.Errorf("write %s: %w", d.dest, err)
	}
	return nil
}

func (d *dirExport) Abort() { os.RemoveAll(d.tmp) }

func (o ociLayout) Check(*plan.Image, []ocispecs.Platform) error { return nil }
func (o ociLayout) Scratch(img *plan.Image) string               { return filepath.Dir(o.path(img)) }
func (o ociLayout) Describe(img *plan.Image) string              { return "writing OCI layout " + o.path(img) }

// Deliver writes the layout next to its destination and renames it into
// place, as the BuildKit export does.
func (o ociLayout) Deliver(_ context.Context, img *plan.Image, idx v1.ImageIndex, src string) error {
	dest := o.path(img)
	tmp, err := tempDirBeside(dest)
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

// Holds reports whether the layout's index names digest. Its names are
// brought up to img's tags (a new CalVer tag) by rewriting index.json,
// the layout's only file that names them.
func (o ociLayout) Holds(_ context.Context, img *plan.Image, built Built) (bool, error) {
	digest := built.Digest
	path := filepath.Join(o.path(img), "index.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return false, nil
	}
	var idx ocispecs.Index
	if json.Unmarshal(b, &idx) != nil || len(idx.Manifests) == 0 {
		return false, nil
	}
	var names []string
	for _, m := range idx.Manifests {
		if m.Digest.String() != digest {
			return false, nil
		}
		names = append(names, m.Annotations[annotationImageName])
	}
	if slices.Equal(names, img.Tags) {
		return true, nil
	}
	idx.Manifests = renamed(idx.Manifests[0], img.Tags)
	b, err = json.Marshal(idx)
	if err != nil {
		return false, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

// annotationImageName is where BuildKit's OCI exporter puts an image's
// full name in a layout's index.
const annotationImageName = "io.containerd.image.name"

// renamed is one copy of desc per tag, named as BuildKit's OCI exporter
// names them (the full name, and the tag as the OCI ref name).
func renamed(desc ocispecs.Descriptor, tags []string) []ocispecs.Descriptor {
	out := make([]ocispecs.Descriptor, len(tags))
	for i, tag := range tags {
		d := desc
		d.Annotations = maps.Clone(desc.Annotations)
		d.Annotations[annotationImageName] = tag
		if ref, err := name.NewTag(tag, name.WeakValidation); err == nil {
			d.Annotations[ocispecs.AnnotationRefName] = ref.TagStr()
		}
		out[i] = d
	}
	return out
}
