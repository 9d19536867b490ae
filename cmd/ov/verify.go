package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/build"
	"github.com/overthink/ov/explain"
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/imagediff"
	"github.com/overthink/ov/internal/builddir"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// VerifyCmd is `ov verify`: an image rebuilt from source with no build
// cache, compared with what its last build pushed or wrote.
type VerifyCmd struct {
	BuilderFlags `embed:""`
	MergeFlags   `embed:""`
	PlanFlags    `embed:""`

	Image    string   `arg:"" predictor:"image" name:"image" help:"The image to rebuild and compare."`
	Platform []string `name:"platform" sep:"," placeholder:"OS/ARCH,..." help:"Compare only these platforms (default: every platform of the recorded image)."`
	Push     bool     `help:"Compare with the image in the registry: the digest the last ov build recorded, else the image's tag (--tag's, else its last: latest for tag auto). Default: the OCI layout .build/oci/<image>."`
	Output   string   `short:"o" placeholder:"oci:DIR" help:"Compare with the OCI layout DIR/<image> (ov build --output oci:DIR) instead of .build/oci/<image>."`
	NoDetach bool     `name:"no-detach" help:"Rebuild as one chain: pass it when the image was built with --no-detach."`
	Progress string   `enum:"auto,tty,plain,rawjson,quiet" default:"auto" help:"Progress display: auto, tty, plain, rawjson or quiet."`
}

func (c *VerifyCmd) Help() string {
	return `Rebuilds an image from the project's source on the builder, with no
build cache (every step runs again), into a temporary OCI layout, and
compares each platform's manifest digest with the image its last ov build
exported: the OCI layout .build/oci/<image> (or --output oci:DIR), or the
registry's with --push. Attestation manifests and the index are not
compared: the provenance records the build's times. Prints, per platform,
"reproducible: <image> <platform> <digest>", or what differs: annotations,
config fields, and per layer its first differing path; exit 1 then.

Pass the flags the build was made with (--no-detach, merge flags,
--source-date-epoch); the detached-layer decisions come from the build's
record in .build/state/. For tag auto the version annotation is taken from
the recorded image. An image loaded into docker or podman (--load) cannot
be verified: an engine's store keeps no manifest to compare digests with.

Not ov build --verify, which checks that each image builds detached exactly
as in one chain (missing depends), and writes nothing.`
}

func (c *VerifyCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	if err := c.MergeFlags.check(); err != nil {
		return err
	}
	if c.Push && c.Output != "" {
		return userErrorf("--push and --output name two images to compare with: give one")
	}
	narrow, err := (&BuildCmd{Platform: c.Platform}).platforms()
	if err != nil {
		return err
	}
	opt, err := c.options(g)
	if err != nil {
		return err
	}
	p, opt, err := loadWithEpoch(ctx, g, opt)
	if err != nil {
		return err
	}
	family, img, err := c.plan(ctx, p, opt)
	if err != nil {
		return err
	}
	rec := explain.Read(p.Dir, c.Image)
	want, where, err := c.recorded(ctx, p.Dir, img, rec)
	if err != nil {
		return err
	}
	if len(narrow) > 0 {
		want = slices.DeleteFunc(want, func(m imagediff.Manifest) bool {
			return !slices.ContainsFunc(narrow, func(p ocispecs.Platform) bool { return platforms.Format(p) == m.Platform })
		})
		if len(want) == 0 {
			return userErrorf("%s holds none of the platforms %s", where, formatPlatforms(narrow))
		}
	}
	// A CalVer version is the time of the build: the rebuild takes the
	// recorded one.
	if v := version(want[0].Image); c.Tag == "" && v != "" && v != img.Annotations[plan.KeyVersion] {
		opt.TagOverride = v
		if family, img, err = c.plan(ctx, p, opt); err != nil {
			return err
		}
	}

	lock, err := lockBuildDir(ctx, g, p)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	tmp, err := os.MkdirTemp(filepath.Join(p.Dir, builddir.Dir), verifyTemp)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// As last built: the checks' decisions, and the bases' digests (the
	// tags may have moved since).
	got, err := c.rebuild(ctx, g, p.Dir, llb.BuildOptions{Family: family, Decided: build.Decisions(p.Dir, family), Bases: build.Bases(p.Dir, family)}, want, filepath.Join(tmp, c.Image))
	if err != nil {
		return err
	}
	return c.compare(g, where, want, got)
}

// plan plans the image and the parents it is built on.
func (c *VerifyCmd) plan(ctx context.Context, p *spec.Project, opt plan.Options) ([]*plan.Image, *plan.Image, error) {
	family, _, err := build.Plan(ctx, p, []string{c.Image}, opt, nil)
	if err != nil {
		return nil, nil, planError(err)
	}
	for _, img := range family {
		if img.Name == c.Image {
			return family, img, nil
		}
	}
	return nil, nil, userErrorf("image %q is not in the build plan", c.Image)
}

// recorded reads the platform manifests of the image to compare with, and
// says where they are.
func (c *VerifyCmd) recorded(ctx context.Context, dir string, img *plan.Image, rec *explain.Record) ([]imagediff.Manifest, string, error) {
	if c.Push {
		return pushed(ctx, img, rec, c.Tag != "")
	}
	path := filepath.Join(dir, filepath.FromSlash(ociDir), img.Name)
	if c.Output != "" {
		kind, out, ok := strings.Cut(c.Output, ":")
		if !ok || kind != "oci" || out == "" {
			return nil, "", userErrorf("--output %q: want oci:DIR (an OCI archive or a loaded image is not compared)", c.Output)
		}
		path = filepath.Join(out, img.Name)
	}
	where := "oci:" + shownPath(path)
	if _, err := os.Stat(filepath.Join(path, "index.json")); err != nil {
		if c.Output == "" && rec != nil && loaded(rec.Outputs) {
			return nil, "", userErrorf("image %q was last built with --load: an engine's image store keeps no manifest digest to verify against; build it with --push (then ov verify --push) or to an OCI layout (ov build without --load)", img.Name)
		}
		return nil, "", userErrorf("no OCI layout %s to compare with: build image %q first (ov build writes it there), or name where it went (--push, --output oci:DIR)", shownPath(path), img.Name)
	}
	ms, err := layoutManifests(path)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", where, err)
	}
	return ms, where, nil
}

// loaded reports whether a build's outputs (build.Request.Outputs, as
// ov build describes them: push, load, then oci, each "<desc>; ") were a
// load and nothing to compare with.
func loaded(outputs string) bool {
	first, _, _ := strings.Cut(outputs, ";")
	return strings.HasSuffix(first, " load") && !strings.Contains(outputs, "; oci:")
}

// pushed reads the image from its registry: the digest the last build
// recorded, else the tag (tagged: the first, --tag's; else the last).
func pushed(ctx context.Context, img *plan.Image, rec *explain.Record, tagged bool) ([]imagediff.Manifest, string, error) {
	if len(img.Tags) == 0 {
		return nil, "", userErrorf("image %q has no tags: it cannot have been pushed", img.Name)
	}
	tag := img.Tags[len(img.Tags)-1]
	if tagged {
		tag = img.Tags[0]
	}
	ref, err := name.ParseReference(tag)
	if err != nil {
		return nil, "", userErrorf("image %q: %v", img.Name, err)
	}
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx), remote.WithUserAgent("ov")}
	refs := []name.Reference{ref}
	if rec != nil && rec.Exported != "" {
		refs = []name.Reference{ref.Context().Digest(rec.Exported), ref}
	}
	var errs []error
	for _, r := range refs {
		desc, err := remote.Get(r, opts...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ms, err := descManifests(desc)
		return ms, r.String(), err
	}
	return nil, "", userErrorf("image %q is not in its registry: %v", img.Name, errors.Join(errs...))
}

func descManifests(desc *remote.Descriptor) ([]imagediff.Manifest, error) {
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		return imagediff.Manifests(idx)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	m, err := imagediff.Of(img)
	return []imagediff.Manifest{m}, err
}

// layoutManifests reads the image an ov build wrote as an OCI layout: its
// index.json names it once per tag.
func layoutManifests(dir string) ([]imagediff.Manifest, error) {
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	im, err := root.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) == 0 {
		return nil, errors.New("the layout's index.json names no image")
	}
	d := im.Manifests[0]
	if d.MediaType.IsIndex() {
		idx, err := root.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		return imagediff.Manifests(idx)
	}
	img, err := root.Image(d.Digest)
	if err != nil {
		return nil, err
	}
	m, err := imagediff.Of(img)
	return []imagediff.Manifest{m}, err
}

// version is img's version annotation.
func version(img v1.Image) string {
	m, err := img.Manifest()
	if err != nil {
		return ""
	}
	return m.Annotations[plan.KeyVersion]
}

// rebuild builds the image for want's platforms with no cache, arranged
// as its recorded build (detached-layer decisions, merge), into the OCI
// layout out, its layers encoded as ov build encodes them (encodingStore).
// opt holds the family, the decisions and the pinned bases.
func (c *VerifyCmd) rebuild(ctx context.Context, g *Globals, dir string, opt llb.BuildOptions, want []imagediff.Manifest, out string) ([]imagediff.Manifest, error) {
	var ps []ocispecs.Platform
	for _, m := range want {
		p, err := platforms.Parse(m.Platform)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	bc, addr, err := c.connectAddr(ctx, g)
	if err != nil {
		return nil, err
	}
	defer bc.Close()
	store, err := encodingStore(dir, addr)
	if err != nil {
		return nil, err
	}
	prog, err := startProgress(ctx, g, c.Progress)
	if err != nil {
		return nil, err
	}
	opt.Targets, opt.Platforms = []string{c.Image}, ps
	opt.Exporter = c.MergeFlags.exporter([]export.Dest{export.OCILayoutAt(func(*plan.Image) string { return out })}, store)
	opt.Status, opt.Warn = prog.status, prog.warn
	opt.Linear, opt.NoCache = c.NoDetach, true
	_, err = llb.Build(ctx, bc, opt)
	prog.done(g.Stderr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, exitStatus(130)
		}
		return nil, &userError{err: fmt.Errorf("rebuild failed: %w", err)}
	}
	return layoutManifests(out)
}

// compare prints each platform's verdict; a difference is exit 1.
func (c *VerifyCmd) compare(g *Globals, where string, want, got []imagediff.Manifest) error {
	bad := 0
	for _, w := range want {
		i := slices.IndexFunc(got, func(m imagediff.Manifest) bool { return m.Platform == w.Platform })
		if i < 0 {
			return fmt.Errorf("the rebuild of %s has no %s image", c.Image, w.Platform)
		}
		r := got[i]
		if r.Digest == w.Digest {
			fmt.Fprintf(g.Stdout, "reproducible: %s %s %s\n", c.Image, w.Platform, w.Digest)
			continue
		}
		bad++
		fmt.Fprintf(g.Stdout, "not reproducible: %s %s: %s has %s, the rebuild %s\n", c.Image, w.Platform, where, w.Digest, r.Digest)
		d, err := imagediff.Images(w.Image, r.Image)
		if err != nil {
			return err
		}
		d.Write(g.Stdout, "  ", 1)
	}
	if bad > 0 {
		return userErrorf("verify %s: %d of %d platform(s) rebuilt with no cache differ from %s", c.Image, bad, len(want), where)
	}
	return nil
}
