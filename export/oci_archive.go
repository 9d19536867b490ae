package export

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/plan"
)

// OCIArchive writes the image as an OCI archive (a tar of the layout) at
// path(img), via a temporary file renamed into place when complete.
func OCIArchive(path func(img *plan.Image) string) Dest { return ociArchive{path: path} }

type ociArchive struct{ path func(*plan.Image) string }

func (o ociArchive) Prepare(_ context.Context, img *plan.Image, _ []ocispecs.Platform) (Export, error) {
	dest := o.path(img)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return nil, err
	}
	x := &fileExport{dest: dest, f: f}
	x.entry = client.ExportEntry{
		Type:   client.ExporterOCI,
		Attrs:  map[string]string{"name": tagNames(img)},
		Output: func(map[string]string) (io.WriteCloser, error) { return f, nil },
	}
	return x, nil
}

type fileExport struct {
	dest  string
	f     *os.File
	entry client.ExportEntry
}

func (x *fileExport) Entries() []client.ExportEntry { return []client.ExportEntry{x.entry} }

func (x *fileExport) Commit(context.Context, *client.SolveResponse) error {
	x.f.Close() // BuildKit closes it after writing; a second close is harmless
	if err := os.Rename(x.f.Name(), x.dest); err != nil {
		return fmt.Errorf("write %s: %w", x.dest, err)
	}
	return nil
}

func (x *fileExport) Abort() {
	x.f.Close()
	os.Remove(x.f.Name())
}

func (o ociArchive) Check(*plan.Image, []ocispecs.Platform) error { return nil }
func (o ociArchive) Scratch(img *plan.Image) string               { return filepath.Dir(o.path(img)) }
func (o ociArchive) Describe(img *plan.Image) string              { return "writing OCI archive " + o.path(img) }

// Deliver writes the layout to a temp dir, tars it into a temp file and
// renames that into place.
func (o ociArchive) Deliver(_ context.Context, img *plan.Image, idx v1.ImageIndex, src string) (err error) {
	dest := o.path(img)
	tmp, err := tempDirBeside(dest)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "layout")
	if err := writeLayout(dir, idx, src); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	file := filepath.Join(tmp, "archive.tar")
	if err := tarDir(file, dir); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := os.Rename(file, dest); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	return nil
}

// tarDir writes the tree at dir as a tar file.
func tarDir(file, dir string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// Holds is false: an archive is one file to write again, not worth
// reading back.
func (ociArchive) Holds(context.Context, *plan.Image, Built) (bool, error) { return false, nil }
