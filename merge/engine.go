package merge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Engine moves images between a container engine's store and ov: Load runs
// `<bin> save`, Save runs `<bin> load`.
type Engine struct {
	Bin     string    // "docker" (default) or "podman", or a path to either
	Flags   []string  // global flags before the command (--context ctx, --root dir)
	TempDir string    // where the saved archive and merged layers go ("" = os.TempDir())
	Stderr  io.Writer // the engine's own messages ("Loaded image: ..."); nil discards them
}

func (e Engine) bin() string {
	if e.Bin == "" {
		return "docker"
	}
	return e.Bin
}

func (e Engine) podman() bool { return strings.Contains(filepath.Base(e.bin()), "podman") }

// SaveArgs is the argv (after the binary and Flags) that writes ref as a
// docker-archive to stdout.
func (e Engine) SaveArgs(ref string) []string {
	if e.podman() {
		return []string{"save", "--format", "docker-archive", ref}
	}
	return []string{"save", ref}
}

// LoadArgs is the argv (after the binary and Flags) that loads a docker-archive
// (tags included) from stdin.
func (e Engine) LoadArgs() []string { return []string{"load"} }

// TagArgs is the argv (after the binary and Flags) that gives ref the name tag.
func (e Engine) TagArgs(ref, tag string) []string { return []string{"tag", ref, tag} }

// Archive is an image saved out of the engine into a temp file.
type Archive struct {
	v1.Image
	dir string
}

// Close removes the archive.
func (a *Archive) Close() error {
	if a == nil {
		return nil
	}
	return os.RemoveAll(a.dir)
}

// Load reads ref out of the engine (`docker save ref`, streamed into a temp
// file). The image is valid until the Archive is closed.
func (e Engine) Load(ctx context.Context, ref string) (_ *Archive, err error) {
	dir, err := os.MkdirTemp(e.TempDir, "ov-merge-save-")
	if err != nil {
		return nil, err
	}
	a := &Archive{dir: dir}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	f, err := os.Create(filepath.Join(dir, "image.tar"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := e.run(ctx, f, e.SaveArgs(ref)...); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if a.Image, err = tarball.ImageFromPath(f.Name(), nil); err != nil {
		return nil, fmt.Errorf("reading %s save %s: %w", e.bin(), ref, err)
	}
	if _, err := a.Image.Manifest(); err != nil {
		return nil, fmt.Errorf("reading %s save %s: %w", e.bin(), ref, err)
	}
	return a, nil
}

// Save loads img into the engine under the given tags: the archive is
// written straight into `docker load`'s stdin, never to disk.
func (e Engine) Save(ctx context.Context, img v1.Image, tags ...string) error {
	if len(tags) == 0 {
		return errors.New("save: no tag for the image")
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return fmt.Errorf("save: tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	cmd, stderr := e.command(ctx, e.LoadArgs()...)
	cmd.Stdout = e.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s load: %w", e.bin(), err)
	}
	werr := tarball.MultiRefWrite(refs, stdin)
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return e.failed(ctx, "load", err, stderr)
	}
	if werr != nil {
		return fmt.Errorf("writing image to %s load: %w", e.bin(), werr)
	}
	return nil
}

// Tag gives ref a second name.
func (e Engine) Tag(ctx context.Context, ref, tag string) error {
	return e.run(ctx, e.Stderr, e.TagArgs(ref, tag)...)
}

// Request is one `ov merge` of an image in the engine.
type Request struct {
	Ref      string    // image to merge
	Tag      string    // name of the merged image ("" = Ref, replacing it)
	MaxBytes int64     // size limit of a merged layer (compressed)
	DryRun   bool      // report the plan only
	Report   io.Writer // where the plan goes (nil = nowhere)
}

// Merge loads req.Ref from the engine, reports the plan, merges and loads the
// result back. Merged layers go uncompressed: `docker load` needs no gzip.
// It returns the plan. Cancel ctx to abort; temp files are removed either way.
func (e Engine) Merge(ctx context.Context, req Request, opts ...Option) ([]Group, error) {
	tag := req.Tag
	if tag == "" {
		tag = req.Ref
	}
	if _, err := name.NewTag(tag); err != nil { // before the long part
		return nil, fmt.Errorf("merge %s: tag %q: %w", req.Ref, tag, err)
	}
	a, err := e.Load(ctx, req.Ref)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	groups, err := Plan(a, req.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Ref, err)
	}
	if req.Report != nil {
		if err := WritePlan(req.Report, groups); err != nil {
			return nil, err
		}
	}
	switch {
	case req.DryRun:
		return groups, nil
	case !anyMerge(groups) && tag == req.Ref:
		return groups, nil
	case !anyMerge(groups):
		return groups, e.Tag(ctx, req.Ref, tag)
	}
	opts = append([]Option{WithTempDir(e.TempDir), WithoutCompression()}, opts...)
	m, err := Apply(ctx, a, groups, req.MaxBytes, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Ref, err)
	}
	defer m.Close()
	if err := e.Save(ctx, m, tag); err != nil {
		return nil, fmt.Errorf("%s: %w", req.Ref, err)
	}
	return groups, nil
}

func (e Engine) command(ctx context.Context, args ...string) (*exec.Cmd, *tailBuffer) {
	cmd := exec.CommandContext(ctx, e.bin(), append(slices.Clip(e.Flags), args...)...)
	cmd.WaitDelay = 10 * time.Second
	stderr := &tailBuffer{}
	cmd.Stderr = stderr
	if e.Stderr != nil {
		cmd.Stderr = io.MultiWriter(stderr, e.Stderr)
	}
	return cmd, stderr
}

// run runs the engine; an *os.File stdout gets the output without a copy.
func (e Engine) run(ctx context.Context, stdout io.Writer, args ...string) error {
	cmd, stderr := e.command(ctx, args...)
	cmd.Stdout = stdout
	if err := cmd.Run(); err != nil {
		return e.failed(ctx, strings.Join(args, " "), err, stderr)
	}
	return nil
}

func (e Engine) failed(ctx context.Context, what string, err error, stderr *tailBuffer) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", e.bin(), what, ctx.Err())
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return fmt.Errorf("%s %s: %w: %s", e.bin(), what, err, msg)
	}
	return fmt.Errorf("%s %s: %w", e.bin(), what, err)
}

// tailBuffer keeps the last 4 KiB written to it, for error messages.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	const max = 4 << 10
	t.b = append(t.b, p...)
	if len(t.b) > max {
		t.b = t.b[len(t.b)-max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
