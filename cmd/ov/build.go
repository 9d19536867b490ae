package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	bkbuild "github.com/moby/buildkit/cmd/buildctl/build"
	"github.com/moby/buildkit/util/progress/progressui"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/build"
	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/explain"
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/builddir"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// BuildCmd is `ov build`: images compiled to LLB and solved by buildkitd.
type BuildCmd struct {
	BuilderFlags `embed:""`
	EngineFlag   `embed:""`
	MergeFlags   `embed:""`
	PlanFlags    `embed:""`

	Images     []string `arg:"" predictor:"image" optional:"" name:"image" help:"Images to build (default: every enabled image)."`
	Platform   []string `name:"platform" sep:"," placeholder:"OS/ARCH,..." help:"Build only these of each image's platforms."`
	Push       bool     `help:"Push every tag of each image to its registry (credentials from the docker config)."`
	Load       bool     `help:"Load each image into the container engine (the host platform unless --platform picks one)."`
	Provenance string   `default:"min" enum:"min,max,false" help:"SLSA provenance attestation of pushed images and OCI outputs (min, max or false), as buildx's default: each image becomes an index with an attestation manifest per platform. None with --load: an engine's image store cannot hold it."`
	Output     string   `short:"o" placeholder:"oci:DIR|oci-archive:FILE" help:"Write OCI image layouts to DIR/<image>, or one image as an OCI archive. Default, when neither --push nor --load is given: oci:.build/oci."`
	Progress   string   `enum:"auto,tty,plain,rawjson,quiet" default:"auto" help:"Progress display: auto, tty, plain, rawjson or quiet."`
	DryRun     bool     `name:"dry-run" help:"Print what would be built (images, platforms, tags, outputs) and stop; connects to nothing."`
	CacheTo    []string `name:"cache-to" sep:"none" placeholder:"type=registry,ref=REF|type=local,dest=DIR" help:"Export build cache (per image: REF's tag gets -<image>, DIR gets /<image>). Repeatable."`
	CacheFrom  []string `name:"cache-from" sep:"none" placeholder:"type=registry,ref=REF|type=local,src=DIR" help:"Import build cache written by --cache-to. Repeatable."`
	NoDetach   bool     `name:"no-detach" help:"Build each image as one chain of steps, as its Containerfile does: an edit in a layer then reruns every layer after it. By default a layer's own-file steps (root.yml, package.json, Cargo.toml, user.yml) run on just what they need and are merged back, so an edit reruns only that layer and the layers depending on it."`
	Explain    bool     `help:"Before building, print per image and layer whether the builder reuses it or rebuilds it, and why (compared with the last build recorded in .build/state/). Reuse means the build cache still has it; buildkitd may have pruned it since."`
	Force      bool     `help:"Build every image, also those up to date, and decide afresh which layers build detached (as a first build does, forgetting what the last build's checks decided and recorded in .build/state/). By default an image whose inputs (layer files, steps, parent, base digest, builder) and outputs are those of its last build, and whose destinations still hold that build's image (one HEAD per tag for --push, the image ID of each tag for --load, the layout's index for an OCI layout), is not built again; an oci-archive output is always built."`
	Verify     bool     `help:"Build each image both detached (the default) and as one chain (as its Containerfile does), on the same builder, and compare them: for every path that differs, print the layers that wrote it and the depends line that would fix it; exit 1 on a difference. Writes no image. Run it after adding or changing layers, and in CI. (To check that a built image is reproducible, rebuilt with no cache, see ov verify.)"`
}

func (c *BuildCmd) Help() string {
	return `Builds the named images (every enabled image by default) directly with
BuildKit, in one run: an image whose base is another image builds on that
image's result without pushing or pulling it, and each image's platforms
build in parallel into one multi-platform image.

The result goes where --push, --load and --output say (several at once are
fine); with none of them it is written as an OCI layout under .build/oci/,
so a build never throws its result away. Outputs appear only when complete:
an interrupted or failed build leaves nothing half-written.

Images with a merge block in images.yml (all of them with --merge) get their
small layers merged on the way out, as ov merge would: what is pushed,
loaded or written is already merged, with no docker save/load round trip.

Unlike a Containerfile, an edit to one layer does not rebuild every layer
after it: a layer's own-file steps (root.yml, package.json, Cargo.toml,
user.yml) run on the image's package installs before them plus the layers
they depend on (depends in layer.yml), and their changes are merged back in
place. A check after the solve compares every path the layers wrote: two
layers that do not depend on each other writing or deleting the same path
(or a layer's path changed by a step after it) build in the chain instead,
with a notice; a layer whose step fails on its depends alone reruns on
every layer before it. A layer that reads files of a layer it does not
depend on must declare the dependency: --verify finds the ones missing.
--no-detach builds everything as one chain.

Each successful build is recorded in .build/state/<image>.json: --explain
compares the current inputs with it and names, per layer, the first input
that changed (a file of the layer, layer.yml, the steps, a layer it depends
on, the parent, the base image's digest). What the check decided is
recorded too, and the next build starts from it (no second round for the
same conflict) until the layers' depends change; --force decides afresh.

The builder is --builder / BUILDKIT_HOST, else the system buildkitd if one
answers, else ov's own managed buildkitd (started on demand; see ov builder).`
}

// output is one parsed --push/--load/--output destination.
type output struct {
	desc func(image string) string // where image goes, as the summary and --dry-run say it
	exp  export.Dest
}

// fixed describes an output the same way for every image.
func fixed(desc string) func(string) string { return func(string) string { return desc } }

func (c *BuildCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()

	narrow, err := c.platforms()
	if err != nil {
		return err
	}
	opt, err := c.options(g)
	if err != nil {
		return err
	}
	if err := c.MergeFlags.check(); err != nil {
		return err
	}
	if err := c.checkVerify(); err != nil {
		return err
	}
	for _, e := range append(slices.Clone(c.CacheFrom), c.CacheTo...) {
		if !strings.Contains(e, "type=") {
			return userErrorf("cache %q: want type=registry,ref=REF or type=local,src=DIR|dest=DIR", e)
		}
	}
	imports, err := bkbuild.ParseImportCache(c.CacheFrom)
	if err != nil {
		return userErrorf("--cache-from: %v", err)
	}
	exports, err := bkbuild.ParseExportCache(c.CacheTo)
	if err != nil {
		return userErrorf("--cache-to: %v", err)
	}

	p, opt, err := loadWithEpoch(ctx, g, opt)
	if err != nil {
		return err
	}
	plans, targets, err := build.Plan(ctx, p, c.Images, opt, narrow)
	var perr *build.PlatformError
	if errors.As(err, &perr) {
		return &userError{err: err}
	}
	if err != nil {
		return planError(err)
	}
	outs, err := c.outputs(p, targets)
	if err != nil {
		return err
	}
	if c.DryRun {
		return c.dryRun(g.Stdout, plans, targets, narrow, outs)
	}

	lock, err := lockBuildDir(ctx, g, p)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := c.checkOutputDirs(p, targets); err != nil {
		return err
	}
	exps := make([]export.Dest, len(outs))
	for i, o := range outs {
		exps[i] = o.exp
	}
	bc, addr, err := c.connectAddr(ctx, g)
	if err != nil {
		return err
	}
	defer bc.Close()
	if c.Verify {
		return c.verify(ctx, g, bc, filepath.Join(p.Dir, ".build"), llb.BuildOptions{
			Family: plans, Targets: targets, Platforms: narrow, CacheImports: imports, CacheExports: exports,
		})
	}
	prep, err := build.Prepare(ctx, build.Request{Project: p, Family: plans, Targets: targets, Platforms: narrow, Builder: addr, Offline: c.offline(),
		Dests: exps, Outputs: c.outputsKeys(plans, targets, outs, narrow), Force: c.Force})
	if err != nil {
		return userErrorf("%v", err)
	}
	if c.Explain {
		if err := explain.Print(g.Stdout, prep.Explain()); err != nil {
			return err
		}
	}

	store, err := encodingStore(p.Dir, addr)
	if err != nil {
		return err
	}
	prog, err := c.startProgress(ctx, g)
	if err != nil {
		return err
	}
	rep, err := prep.Run(ctx, bc, llb.BuildOptions{
		Exporter:       c.exporter(exps, store),
		CacheImports:   imports,
		CacheExports:   exports,
		Status:         prog.status,
		WaitForParents: c.Push,
		Provenance:     c.provenance(),
		Linear:         c.NoDetach,
		Warn:           prog.warn,
	})
	prog.done(g.Stderr)
	for _, err := range rep.RecordErrs {
		fmt.Fprintf(g.Stderr, "ov: warning: %v (ov build --explain will not know this build)\n", err)
	}
	where := func(image string) string {
		descs := make([]string, len(outs))
		for i, o := range outs {
			descs[i] = o.desc(image)
		}
		return strings.Join(descs, ", ")
	}
	for _, n := range rep.UpToDate {
		fmt.Fprintf(g.Stderr, "up to date: %s -> %s\n", n, where(n))
	}
	for _, r := range rep.Results {
		fmt.Fprintf(g.Stderr, "built %s (%s) -> %s%s\n", r.Image, formatPlatforms(r.Platforms), where(r.Image), mergeNote(r))
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(g.Stderr, "ov: build interrupted; unfinished images were not written")
			return exitStatus(130)
		}
		return &userError{err: fmt.Errorf("build failed: %w", err)}
	}
	return nil
}

// outputsKeys describe per target how this build exports it: a target
// built with other outputs, merge limit, platforms or --no-detach than its
// last build is built again (see build.Request.Outputs). Each key is the
// target's own, so the images named beside it do not matter.
func (c *BuildCmd) outputsKeys(family []*plan.Image, targets []string, outs []output, narrow []ocispecs.Platform) map[string]string {
	all := fmt.Sprintf(" platforms=%s no-detach=%v provenance=%q", formatPlatforms(narrow), c.NoDetach, c.provenance())
	// An image of another epoch is another image; one of now is whatever
	// the last build made.
	if len(family) > 0 && family[0].Epoch != nil && !family[0].Epoch.Now {
		all += fmt.Sprintf(" epoch=%d", family[0].Epoch.Unix)
	}
	keys := map[string]string{}
	for _, img := range family {
		if !slices.Contains(targets, img.Name) {
			continue
		}
		var b strings.Builder
		for _, o := range outs {
			fmt.Fprintf(&b, "%s; ", o.desc(img.Name))
		}
		fmt.Fprintf(&b, "merge=%d%s", c.maxBytes(img), all)
		// The annotations (a superset of the labels) are set at export and
		// rerun no step: the record of the steps does not see them, this
		// does. A new CalVer tag, another commit or parent is another image.
		for _, k := range slices.Sorted(maps.Keys(img.Annotations)) {
			fmt.Fprintf(&b, " %s=%q", k, img.Annotations[k])
		}
		keys[img.Name] = b.String()
	}
	return keys
}

// provenance is the attestation mode of this build's exports: none with
// --load (one solve exports to every destination, and a load cannot take
// the attestation), nor for --provenance=false.
func (c *BuildCmd) provenance() string {
	if c.Load || c.Provenance == "false" {
		return ""
	}
	return c.Provenance
}

// checkOutputDirs refuses symbolic links where the build writes under
// .build/: the default OCI layouts and the build records.
func (c *BuildCmd) checkOutputDirs(p *spec.Project, targets []string) error {
	dirs := append([]string{explain.Dir}, storeDirs...) // the store's whatever the builder (see encodingStore)
	if c.Output == "" && !c.Push && !c.Load {
		dirs = append(dirs, ociDir)
		for _, n := range targets {
			dirs = append(dirs, ociDir+"/"+n)
		}
	}
	for _, d := range dirs {
		if err := builddir.Check(p.Dir, d); err != nil {
			return &userError{err: err}
		}
	}
	return nil
}

// progress is a build's progress display, and the notices that wait for
// it to finish drawing.
type progress struct {
	status   chan *client.SolveStatus
	shown    chan struct{}
	mu       sync.Mutex
	warnings []string
}

func (c *BuildCmd) startProgress(ctx context.Context, g *Globals) (*progress, error) {
	return startProgress(ctx, g, c.Progress)
}

// startProgress starts a progress display of mode (--progress).
func startProgress(ctx context.Context, g *Globals, mode string) (*progress, error) {
	display, err := progressui.NewDisplay(g.Stderr, progressui.DisplayMode(mode))
	if err != nil {
		return nil, userErrorf("--progress: %v", err)
	}
	p := &progress{status: make(chan *client.SolveStatus), shown: make(chan struct{})}
	go func() {
		defer close(p.shown)
		// The display drains the channel to its end even after Ctrl-C.
		display.UpdateFrom(context.WithoutCancel(ctx), p.status)
	}()
	return p, nil
}

func (p *progress) warn(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.warnings = append(p.warnings, s)
}

// done waits for the display (the build closes status) and prints the
// notices.
func (p *progress) done(w io.Writer) {
	<-p.shown
	for _, s := range p.warnings {
		fmt.Fprintln(w, "ov: "+s)
	}
}

// platforms parses --platform; --load without it means the host's.
func (c *BuildCmd) platforms() ([]ocispecs.Platform, error) {
	var out []ocispecs.Platform
	for _, s := range c.Platform {
		p, err := platforms.Parse(strings.TrimSpace(s))
		if err != nil {
			return nil, userErrorf("--platform %q: %v", s, err)
		}
		out = append(out, platforms.Normalize(p))
	}
	if c.Load {
		switch len(out) {
		case 0:
			out = []ocispecs.Platform{platforms.Normalize(platforms.DefaultSpec())}
		case 1:
		default:
			return nil, userErrorf("--load takes one platform (an engine stores one per tag), not %d", len(out))
		}
	}
	return out, nil
}

// ociDir holds the OCI layouts of a build with no output flags, relative
// to the project.
const ociDir = builddir.Dir + "/oci"

// outputs turns --push, --load and --output into exporters.
func (c *BuildCmd) outputs(p *spec.Project, targets []string) ([]output, error) {
	var outs []output
	if c.Push {
		outs = append(outs, output{fixed("push"), export.Push()})
	}
	if c.Load {
		eng, err := c.engine()
		if err != nil {
			return nil, err
		}
		outs = append(outs, output{fixed(eng + " load"), export.Load(engine.Engine{Bin: eng})})
	}
	if c.Output != "" || len(outs) == 0 {
		spec := c.Output
		if spec == "" {
			spec = "oci:" + filepath.Join(p.Dir, filepath.FromSlash(ociDir))
		}
		kind, dest, ok := strings.Cut(spec, ":")
		if !ok || dest == "" {
			return nil, userErrorf("--output %q: want oci:DIR or oci-archive:FILE", c.Output)
		}
		switch kind {
		case "oci":
			outs = append(outs, output{func(image string) string { return "oci:" + shownPath(filepath.Join(dest, image)) }, export.OCILayout(dest)})
		case "oci-archive":
			if len(targets) != 1 {
				return nil, userErrorf("--output oci-archive:FILE holds one image, not %d (%s); use oci:DIR or name one image", len(targets), strings.Join(targets, ", "))
			}
			outs = append(outs, output{fixed("oci-archive:" + shownPath(dest)), export.OCIArchive(func(*plan.Image) string { return dest })})
		default:
			return nil, userErrorf("--output %q: unknown type %q (want oci or oci-archive)", c.Output, kind)
		}
	}
	return outs, nil
}

func (c *BuildCmd) dryRun(w io.Writer, family []*plan.Image, targets []string, narrow []ocispecs.Platform, outs []output) error {
	byName := map[string]*plan.Image{}
	for _, img := range family {
		byName[img.Name] = img
	}
	for _, n := range targets {
		img := byName[n]
		ps, _ := llb.Platforms(img, narrow)
		fmt.Fprintf(w, "%s\n", n)
		if img.Parent != "" {
			fmt.Fprintf(w, "  base:      %s (built in this run)\n", img.Parent)
		} else {
			fmt.Fprintf(w, "  base:      %s\n", img.External)
		}
		fmt.Fprintf(w, "  platforms: %s\n", formatPlatforms(ps))
		fmt.Fprintf(w, "  tags:      %s\n", strings.Join(img.Tags, " "))
		for _, o := range outs {
			fmt.Fprintf(w, "  output:    %s\n", o.desc(n))
		}
		if max := c.maxBytes(img); max > 0 {
			fmt.Fprintf(w, "  merge:     layers up to %d MB\n", max>>20)
		}
	}
	var parents []string
	for n, img := range byName {
		if !slices.Contains(targets, n) {
			parents = append(parents, img.Name)
		}
	}
	if len(parents) > 0 {
		slices.Sort(parents)
		fmt.Fprintf(w, "built into the images above, not exported: %s\n", strings.Join(parents, ", "))
	}
	return nil
}

// shownPath is path as a user best reads it: relative to the working
// directory when inside it (.build/oci/hello), else absolute.
func shownPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return abs
}

func formatPlatforms(ps []ocispecs.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = platforms.Format(p)
	}
	return strings.Join(s, ", ")
}
