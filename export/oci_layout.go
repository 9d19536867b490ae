package export

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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
