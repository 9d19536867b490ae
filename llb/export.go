package llb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/plan"
)

// An Exporter sends built images somewhere. Build calls Prepare once per
// image before solving it, and then exactly one of Commit (the solve and
// BuildKit's export succeeded) or Abort (anything failed, or the build was
// cancelled) on what it returned. Post-processing such as layer merging fits
// here: export to a temporary OCI layout, then rewrite and publish it in
// Commit.
type Exporter interface {
	Prepare(ctx context.Context, img *plan.Image, platforms []ocispecs.Platform) (Export, error)
}

// Export is one image's export in progress.
type Export interface {
	// Entries are the BuildKit exports for the image's solve.
	Entries() []client.ExportEntry
	// Commit publishes the result: moves files into place, waits for a load.
	Commit(ctx context.Context, resp *client.SolveResponse) error
	// Abort removes anything partial. It is safe to call after Commit failed.
	Abort()
}

// Multi exports to every exporter at once (one solve, several exports).
func Multi(exps ...Exporter) Exporter { return multi(exps) }

type multi []Exporter

func (m multi) Prepare(ctx context.Context, img *plan.Image, ps []ocispecs.Platform) (Export, error) {
	var out multiExport
	for _, e := range m {
		x, err := e.Prepare(ctx, img, ps)
		if err != nil {
			out.Abort()
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

type multiExport []Export

func (m multiExport) Entries() []client.ExportEntry {
	var out []client.ExportEntry
	for _, x := range m {
		out = append(out, x.Entries()...)
	}
	return out
}

func (m multiExport) Commit(ctx context.Context, resp *client.SolveResponse) error {
	for _, x := range m {
		if err := x.Commit(ctx, resp); err != nil {
			return err
		}
	}
	return nil
}

func (m multiExport) Abort() {
	for _, x := range m {
		x.Abort()
	}
}

// tagNames is the exporter "name" attribute: every tag, comma-separated.
func tagNames(img *plan.Image) string { return strings.Join(img.Tags, ",") }

// OCILayout writes each image as an OCI image layout directory dir/<image>.
// The layout is written next to its destination and renamed into place when
// complete, replacing an older one.
func OCILayout(dir string) Exporter {
	return OCILayoutAt(func(img *plan.Image) string { return filepath.Join(dir, img.Name) })
}

// OCILayoutAt writes each image as an OCI image layout directory path(img).
func OCILayoutAt(path func(img *plan.Image) string) Exporter { return ociLayout{path: path} }

type ociLayout struct{ path func(*plan.Image) string }

func (o ociLayout) Prepare(_ context.Context, img *plan.Image, _ []ocispecs.Platform) (Export, error) {
	dest := o.path(img)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-")
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

// linkBlobs hard-links the blobs of the layout at dest (if any) into the new
// layout at tmp, so an unchanged layer is not written again.
func linkBlobs(dest, tmp string) error {
	algs, err := os.ReadDir(filepath.Join(dest, "blobs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, alg := range algs {
		blobs, err := os.ReadDir(filepath.Join(dest, "blobs", alg.Name()))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(tmp, "blobs", alg.Name()), 0o755); err != nil {
			return err
		}
		for _, b := range blobs {
			if !b.Type().IsRegular() {
				continue
			}
			err := os.Link(filepath.Join(dest, "blobs", alg.Name(), b.Name()), filepath.Join(tmp, "blobs", alg.Name(), b.Name()))
			if err != nil {
				return nil // another filesystem or no links: write everything anew
			}
		}
	}
	return nil
}

// pruneBlobs removes the blobs of the layout at dir that its index does not
// reach (those linked from an older layout that the new image dropped).
func pruneBlobs(dir string) error {
	keep := map[digest.Digest]bool{}
	var walk func(data []byte) error
	walk = func(data []byte) error {
		var doc struct {
			Manifests []ocispecs.Descriptor `json:"manifests"`
			Config    *ocispecs.Descriptor  `json:"config"`
			Layers    []ocispecs.Descriptor `json:"layers"`
			Subject   *ocispecs.Descriptor  `json:"subject"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return err
		}
		descs := append(slices.Clone(doc.Manifests), doc.Layers...)
		for _, d := range []*ocispecs.Descriptor{doc.Config, doc.Subject} {
			if d != nil {
				descs = append(descs, *d)
			}
		}
		for _, d := range descs {
			if keep[d.Digest] || d.Digest.Validate() != nil {
				continue
			}
			keep[d.Digest] = true
			if strings.Contains(d.MediaType, "manifest") || strings.Contains(d.MediaType, "index") {
				b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()))
				if err != nil {
					return err
				}
				if err := walk(b); err != nil {
					return err
				}
			}
		}
		return nil
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return err
	}
	if err := walk(index); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	algs, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	for _, alg := range algs {
		blobs, err := os.ReadDir(filepath.Join(dir, "blobs", alg.Name()))
		if err != nil {
			return err
		}
		for _, b := range blobs {
			if !keep[digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), b.Name())] {
				if err := os.Remove(filepath.Join(dir, "blobs", alg.Name(), b.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// replaceDir moves tmp to dest, replacing what dest held.
func replaceDir(tmp, dest string) error {
	old := ""
	if _, err := os.Lstat(dest); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dest, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// OCIArchive writes the image as an OCI archive (a tar of the layout) at
// path(img), via a temporary file renamed into place when complete.
func OCIArchive(path func(img *plan.Image) string) Exporter { return ociArchive{path: path} }

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

// Push pushes each image to its registry under all its tags. Registry
// credentials come from the session (the docker config, see Build).
func Push() Exporter { return push{} }

type push struct{}

func (push) Prepare(_ context.Context, img *plan.Image, _ []ocispecs.Platform) (Export, error) {
	if len(img.Tags) == 0 {
		return nil, fmt.Errorf("image %q has no tags to push", img.Name)
	}
	return entryExport{client.ExportEntry{
		Type:  client.ExporterImage,
		Attrs: map[string]string{"name": tagNames(img), "push": "true"},
	}}, nil
}

type entryExport []client.ExportEntry

func (e entryExport) Entries() []client.ExportEntry                     { return e }
func (entryExport) Commit(context.Context, *client.SolveResponse) error { return nil }
func (entryExport) Abort()                                              {}

// Load loads each image into a container engine ("docker" or "podman") by
// streaming a docker archive into `<engine> load`. A load only takes effect
// when the stream is complete, so an interrupted build loads nothing.
// Args go before "load" (e.g. podman's --root).
func Load(engine string, args ...string) Exporter { return load{engine: engine, args: args} }

type load struct {
	engine string
	args   []string
}

func (l load) Prepare(ctx context.Context, img *plan.Image, ps []ocispecs.Platform) (Export, error) {
	if len(ps) != 1 {
		return nil, fmt.Errorf("image %q: %s load takes one platform, not %d (use --platform)", img.Name, l.engine, len(ps))
	}
	x := &loadExport{engine: l.engine, args: l.args, image: img.Name}
	x.entry = client.ExportEntry{
		Type:   client.ExporterDocker,
		Attrs:  map[string]string{"name": tagNames(img)},
		Output: x.start,
	}
	return x, nil
}

type loadExport struct {
	engine, image string
	args          []string
	entry         client.ExportEntry

	mu       sync.Mutex
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	output   strings.Builder
	done     chan error
	waitOnce sync.Once
	waitErr  error
}

func (x *loadExport) Entries() []client.ExportEntry { return []client.ExportEntry{x.entry} }

// start runs `<engine> load` when BuildKit begins writing the archive.
func (x *loadExport) start(map[string]string) (io.WriteCloser, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	cmd := exec.Command(x.engine, append(slices.Clone(x.args), "load")...)
	cmd.Stdout, cmd.Stderr = &x.output, &x.output
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("image %q: %s load: %w", x.image, x.engine, err)
	}
	x.cmd, x.stdin, x.done = cmd, stdin, make(chan error, 1)
	go func() { x.done <- cmd.Wait() }()
	return stdin, nil
}

// wait returns the load's exit status once it exited.
func (x *loadExport) wait() error {
	x.waitOnce.Do(func() { x.waitErr = <-x.done })
	return x.waitErr
}

func (x *loadExport) Commit(ctx context.Context, _ *client.SolveResponse) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cmd == nil {
		return fmt.Errorf("image %q: nothing was exported to %s load", x.image, x.engine)
	}
	x.stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- x.wait() }()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("image %q: %s load: %w: %s", x.image, x.engine, err, strings.TrimSpace(x.output.String()))
		}
		return nil
	case <-ctx.Done():
		x.cmd.Process.Kill()
		x.wait()
		return ctx.Err()
	}
}

func (x *loadExport) Abort() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cmd != nil {
		x.cmd.Process.Kill() // an incomplete archive never loads
		x.wait()
	}
}
