package llb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	commonexptypes "github.com/moby/buildkit/exporter/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/identity"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/solver/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/overthink/ov/export"
	"github.com/overthink/ov/plan"
)

// BuildOptions say what Build builds and where the results go.
type BuildOptions struct {
	// Family holds every image the targets need, parents included.
	Family []*plan.Image
	// Targets are the images to build and export, by name; empty means all
	// of Family. A parent that is not a target is built only as part of its
	// children.
	Targets []string
	// Platforms narrows each target's platforms; empty builds each image's
	// own.
	Platforms []ocispecs.Platform
	// Exporter receives every target; required.
	Exporter export.Exporter
	// CacheImports and CacheExports apply to every target, each under a
	// reference of its own (see CacheFor).
	CacheImports, CacheExports []client.CacheOptionsEntry
	// Session adds attachables to every build's session. Registry
	// credentials from the docker config are always attached.
	Session []session.Attachable
	// Status, when set, receives the progress of all builds, and is closed
	// when Build returns. Feed it to one progressui display.
	Status chan *client.SolveStatus
	// WaitForParents exports a target only after the targets it is built
	// on are exported, so a push uploads each shared blob once; the solves
	// all run at once either way, and BuildKit shares the common work.
	WaitForParents bool
	// Linear builds each image as one chain of steps, as its Containerfile
	// does, instead of detaching layers (see detach.go).
	Linear bool
	// Warn, when set, receives notices that are not errors (a detached
	// layer that had to build attached).
	Warn func(string)
	// Provenance is the SLSA provenance attestation BuildKit's solver adds
	// to every export ("min" or "max"; "" none): the image becomes an
	// index with an attestation manifest (platform unknown/unknown) per
	// platform. An image engine's load cannot hold it.
	Provenance string
	// Decided seeds the detached-layer decisions, per image: what an
	// earlier build's checks decided (Result.Decided). A build of the same
	// layers then neither fails a step nor solves again to reach them; its
	// checks still run and can add to them.
	Decided map[string]Decided
	// NoCache solves every step afresh: each vertex, the checks' too,
	// ignores BuildKit's cache (llb.IgnoreCache, what buildx --no-cache
	// has the Dockerfile frontend put on its vertices). ov verify's
	// rebuild.
	NoCache bool
	// Bases pins external bases (as the plan names them) to a digest: the
	// one a build recorded, for ov verify's rebuild of it, where the tag
	// may have moved since.
	Bases map[string]digest.Digest
}

// Decided is what the detached-layer checks decided for one image.
type Decided struct {
	// Attached are the layers built in the chain (they write what an
	// unordered layer writes).
	Attached []string `json:"attached,omitempty"`
	// SeeAll are the layers built on every layer before them (a step of
	// theirs failed on their depends alone).
	SeeAll []string `json:"see_all,omitempty"`
}

// Options are the compile options that arrange an image as d says.
func (d Decided) Options() Options {
	return Options{Attach: setOf(d.Attached), SeeAll: setOf(d.SeeAll)}
}

func setOf(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

// Result is one exported target.
type Result struct {
	Image     string
	Platforms []ocispecs.Platform
	// ExporterResponse is BuildKit's (image digest, names, ...).
	ExporterResponse map[string]string
	// Decided holds, for the image and the parents it was built on, what
	// the detached-layer checks decided.
	Decided map[string]Decided
}

// Build builds the targets against buildkitd, each as one multi-platform
// result with its platforms solved in parallel, and hands them to the
// exporter. A child's LLB embeds its parent's, so a family is built without
// pushing or pulling between its members. Failed targets are reported
// together in the error; the others are still exported and returned.
func Build(ctx context.Context, c *client.Client, opt BuildOptions) ([]Result, error) {
	if opt.Status != nil {
		defer close(opt.Status)
	}
	b, err := newBuilder(opt)
	if err != nil {
		return nil, err
	}
	b.warm = newWarmer(ctx, c)
	results := make([]Result, len(b.targets))
	errs := make([]error, len(b.targets))
	var wg sync.WaitGroup
	for i, img := range b.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(b.done[img.Name])
			results[i], errs[i] = b.build(ctx, c, img)
			if errs[i] != nil {
				b.failed.Store(img.Name, true)
			}
		}()
	}
	wg.Wait()
	b.warm.close()
	b.statuses.Wait()
	var done []Result
	for i, r := range results {
		if errs[i] == nil {
			done = append(done, r)
		}
	}
	return done, joinUnique(errs)
}

// BuildOCI builds one image of family, with the parents it needs, into an
// OCI image layout at dir.
func BuildOCI(ctx context.Context, c *client.Client, family []*plan.Image, image, dir string) error {
	_, err := Build(ctx, c, BuildOptions{
		Family:   family,
		Targets:  []string{image},
		Exporter: export.OCILayoutAt(func(*plan.Image) string { return dir }),
	})
	return err
}

type builder struct {
	opt      BuildOptions
	byName   map[string]*plan.Image
	targets  []*plan.Image
	mounts   map[string]fsutil.FS
	session  []session.Attachable
	resolver *resolveCache
	done     map[string]chan struct{}
	failed   sync.Map
	statuses sync.WaitGroup
	warm     *warmer
	localID  string // the local sources' unique ID: one per Build (see marshal)

	mu     sync.Mutex
	labels map[digest.Digest]label    // every marshaled vertex with a step label
	attach map[string]map[string]bool // per image, layers a check attached
	seeAll map[string]map[string]bool // per image, layers that failed on their depends alone
}

func newBuilder(opt BuildOptions) (*builder, error) {
	if opt.Exporter == nil {
		return nil, errors.New("no exporter")
	}
	b := &builder{
		opt:      opt,
		byName:   map[string]*plan.Image{},
		mounts:   map[string]fsutil.FS{},
		resolver: &resolveCache{m: map[string]*resolved{}},
		done:     map[string]chan struct{}{},
		labels:   map[digest.Digest]label{},
		attach:   map[string]map[string]bool{},
		seeAll:   map[string]map[string]bool{},
		localID:  identity.NewID(),
	}
	for _, img := range opt.Family {
		b.byName[img.Name] = img
	}
	for name, d := range opt.Decided {
		for _, l := range d.Attached {
			b.setOnce(b.attach, name, l)
		}
		for _, l := range d.SeeAll {
			b.setOnce(b.seeAll, name, l)
		}
	}
	for name, dir := range LocalDirs(opt.Family...) {
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			return nil, fmt.Errorf("layer files %s: %w", dir, err)
		}
		b.mounts[name] = fs
	}
	names := opt.Targets
	if len(names) == 0 {
		for _, img := range opt.Family {
			names = append(names, img.Name)
		}
	}
	for _, n := range names {
		img, ok := b.byName[n]
		if !ok {
			return nil, fmt.Errorf("image %q is not in the build plan", n)
		}
		for p := img; p.Parent != ""; {
			if p = b.byName[p.Parent]; p == nil {
				return nil, fmt.Errorf("image %q: parent %q is not in the build plan", n, img.Parent)
			}
		}
		if _, dup := b.done[n]; dup {
			continue
		}
		b.targets = append(b.targets, img)
		b.done[n] = make(chan struct{})
	}
	auth := authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(config.LoadDefaultConfigFile(io.Discard)),
	})
	b.session = append([]session.Attachable{auth}, opt.Session...)
	return b, nil
}

// waitParents waits, when asked to, for the targets img is built on.
func (b *builder) waitParents(ctx context.Context, img *plan.Image) error {
	if !b.opt.WaitForParents {
		return nil
	}
	for p := b.byName[img.Parent]; p != nil; p = b.byName[p.Parent] {
		ch, ok := b.done[p.Name]
		if !ok {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("image %q: %w", img.Name, context.Cause(ctx))
		}
		if _, bad := b.failed.Load(p.Name); bad {
			return &parentError{image: img.Name, parent: p.Name}
		}
		return nil // p waited for its own parents
	}
	return nil
}

// baseLayers are the diffIDs of each platform's base image in a solve's
// result (none for scratch), by platforms.FormatAll.
func baseLayers(r *gateway.Result, ps []ocispecs.Platform) map[string][]v1.Hash {
	out := map[string][]v1.Hash{}
	for _, p := range ps {
		key := exptypes.ExporterImageBaseConfigKey
		if len(ps) > 1 {
			key += "/" + platforms.FormatAll(p)
		}
		var cfg struct {
			RootFS struct {
				DiffIDs []v1.Hash `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if json.Unmarshal(r.Metadata[key], &cfg) == nil {
			out[platforms.FormatAll(p)] = cfg.RootFS.DiffIDs
		}
	}
	return out
}

type parentError struct{ image, parent string }

func (e *parentError) Error() string {
	return fmt.Sprintf("image %q: not built: parent image %q failed", e.image, e.parent)
}

// Platforms are the platforms img builds for: its own, narrowed.
func Platforms(img *plan.Image, narrow []ocispecs.Platform) ([]ocispecs.Platform, error) {
	var out []ocispecs.Platform
	for _, s := range img.Platforms {
		p, err := platforms.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("image %q: platform %q: %w", img.Name, s, err)
		}
		p = platforms.Normalize(p)
		if len(narrow) > 0 && !slices.ContainsFunc(narrow, func(n ocispecs.Platform) bool { return platforms.Only(n).Match(p) && platforms.Only(p).Match(n) }) {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		want := make([]string, len(narrow))
		for i, n := range narrow {
			want[i] = platforms.Format(n)
		}
		return nil, fmt.Errorf("image %q builds for %s, not %s", img.Name, strings.Join(img.Platforms, ", "), strings.Join(want, ", "))
	}
	return out, nil
}

func (b *builder) build(ctx context.Context, c *client.Client, img *plan.Image) (res Result, err error) {
	ps, err := Platforms(img, b.opt.Platforms)
	if err != nil {
		return res, err
	}
	exp, err := b.opt.Exporter.Prepare(ctx, img, ps)
	if err != nil {
		return res, fmt.Errorf("image %q: %w", img.Name, err)
	}
	committed := false
	defer func() {
		if !committed {
			exp.Abort()
		}
	}()

	logs := newLogTail()
	so := client.SolveOpt{
		Exports:     ExportAttrs(exp.Entries(), img),
		LocalMounts: b.mounts,
		Session:     b.session,
		SharedKey:   "ov",
		// Non-nil: the client copies cache imports into it (and panics on nil).
		FrontendAttrs: attestAttrs(b.opt.Provenance),
		CacheImports:  CacheFor(b.opt.CacheImports, img.Name),
		CacheExports:  CacheFor(b.opt.CacheExports, img.Name),
	}
	var resp *client.SolveResponse
	for {
		// BuildKit reports a build function's error by its gRPC status
		// alone, dropping the context wrapped around it here; keep the
		// original.
		var fnErr error
		resp, err = c.Build(ctx, so, "ov", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
			r, err := b.solve(ctx, gc, img, ps, so)
			fnErr = err
			if bl, ok := exp.(export.BaseLayers); ok && err == nil {
				bl.SetBaseLayers(baseLayers(r, ps))
			}
			return r, err
		}, b.forward(logs))
		if err == nil {
			break
		}
		if errors.Is(fnErr, errRetry) {
			continue
		}
		if fnErr != nil {
			err = fnErr
		}
		return res, b.explain(img.Name, err, logs)
	}
	if err := exp.Commit(export.WithProgress(ctx, b.progress(img.Name)), resp); err != nil {
		return res, fmt.Errorf("image %q: %w", img.Name, err)
	}
	committed = true
	return Result{Image: img.Name, Platforms: ps, ExporterResponse: resp.ExporterResponse, Decided: b.decidedOf(img)}, nil
}

// ExportAttrs returns entries with what BuildKit's image exporters add
// to img after the solve (so none of it enters a cache key): its
// annotations on every manifest, and its epoch: the config's created time
// and the history times set to it (those of the base kept), and every
// file of the image's own layers no newer than it (rewrite-timestamp), so
// that the layers do not carry the build's time (unless the entry says
// itself: export.Encoding clamps them on ov's side). An epoch of now
// changes nothing BuildKit would not do by itself (but rewrite every
// layer): it adds nothing.
func ExportAttrs(entries []client.ExportEntry, img *plan.Image) []client.ExportEntry {
	out := make([]client.ExportEntry, len(entries))
	for i, x := range entries {
		x.Attrs = maps.Clone(x.Attrs)
		if x.Attrs == nil {
			x.Attrs = map[string]string{}
		}
		for k, v := range img.Annotations {
			x.Attrs[exptypes.AnnotationManifestKey(nil, k)] = v
		}
		if e := img.Epoch; e != nil && !e.Now {
			if _, own := x.Attrs[string(exptypes.OptKeyRewriteTimestamp)]; !own {
				x.Attrs[string(exptypes.OptKeyRewriteTimestamp)] = "true"
			}
			x.Attrs[string(commonexptypes.OptKeySourceDateEpoch)] = strconv.FormatInt(e.Unix, 10)
		}
		out[i] = x
	}
	return out
}

// attestAttrs are the solve's attributes asking BuildKit's solver for a
// provenance attestation of mode (none for ""), as buildx asks for one
// with `--provenance`: the solver makes it for any build, a frontend's or
// a client's own.
func attestAttrs(mode string) map[string]string {
	attrs := map[string]string{}
	if mode != "" {
		attrs["attest:provenance"] = "mode=" + mode
	}
	return attrs
}

// progress shows the export's phases on ov's side (encoding, pushing,
// loading) as vertices of their own, after BuildKit's export of image.
func (b *builder) progress(image string) export.Progress {
	return func(name string) func(error) {
		if b.opt.Status == nil {
			return func(error) {}
		}
		start := time.Now()
		v := client.Vertex{Digest: digest.FromString(identity.NewID()), Name: "[" + image + "] " + name, Started: &start}
		b.opt.Status <- &client.SolveStatus{Vertexes: []*client.Vertex{&v}}
		return func(err error) {
			end, done := time.Now(), v
			done.Completed = &end
			if err != nil {
				done.Error = err.Error()
			}
			b.opt.Status <- &client.SolveStatus{Vertexes: []*client.Vertex{&done}}
		}
	}
}

// forward returns a status channel for one c.Build (which closes it): its
// statuses go to logs and the caller's Status.
func (b *builder) forward(logs *logTail) chan *client.SolveStatus {
	ch := make(chan *client.SolveStatus)
	b.statuses.Add(1)
	go func() {
		defer b.statuses.Done()
		for s := range ch {
			logs.add(s)
			if b.opt.Status != nil {
				b.opt.Status <- s
			}
		}
	}()
	return ch
}

// errRetry ends a build round whose checks changed what is attached: the
// image is compiled and solved again in a new session. (Within one
// session, solving a graph again after one of its steps failed can make
// BuildKit release a shared result twice and fail the build.)
var errRetry = errors.New("detached-layer decisions changed: build again")

// solve is the gateway build function of one target: every platform
// compiled and solved in parallel, returned as one (multi-platform) result
// so is the target's solve options (its warming builds use them).
func (b *builder) solve(ctx context.Context, gc gateway.Client, img *plan.Image, ps []ocispecs.Platform, so client.SolveOpt) (*gateway.Result, error) {
	imports, err := gatewayCacheImports(gc.BuildOpts().Opts)
	if err != nil {
		return nil, err
	}
	refs := make([]gateway.Reference, len(ps))
	configs := make([][]byte, len(ps))
	bases := make([][]byte, len(ps))
	// No cancelling the other platforms when one fails or retries: a
	// session must end with no solve of its own in flight, or another
	// image's session sharing that vertex can wait for it forever.
	var eg errgroup.Group
	for i, p := range ps {
		eg.Go(func() error {
			out, ref, err := b.solveChecked(ctx, gc, img.Name, p, imports, so)
			if err != nil {
				return err
			}
			refs[i], bases[i] = ref, out.BaseConfig
			configs[i], err = json.Marshal(out.Config)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	// Solved; the export starts when this returns. With WaitForParents it
	// waits for the parents' exports (so their blobs are pushed once), while
	// the solve itself ran alongside them.
	if err := b.waitParents(ctx, img); err != nil {
		return nil, err
	}
	res := gateway.NewResult()
	if len(ps) == 1 {
		res.SetRef(refs[0])
		res.AddMeta(exptypes.ExporterImageConfigKey, configs[0])
		addMeta(res, exptypes.ExporterImageBaseConfigKey, bases[0])
		return res, nil
	}
	var expPlatforms exptypes.Platforms
	for i, p := range ps {
		id := platforms.FormatAll(p)
		res.AddRef(id, refs[i])
		res.AddMeta(exptypes.ExporterImageConfigKey+"/"+id, configs[i])
		addMeta(res, exptypes.ExporterImageBaseConfigKey+"/"+id, bases[i])
		expPlatforms.Platforms = append(expPlatforms.Platforms, exptypes.Platform{ID: id, Platform: p})
	}
	dt, err := json.Marshal(expPlatforms)
	if err != nil {
		return nil, err
	}
	res.AddMeta(exptypes.ExporterPlatformsKey, dt)
	return res, nil
}

// addMeta adds v under k, unless empty.
func addMeta(res *gateway.Result, k string, v []byte) {
	if len(v) > 0 {
		res.AddMeta(k, v)
	}
}

// compile compiles name and the parents it is built on for one platform,
// with the layers ch attaches or lets see every layer before them.
func (b *builder) compile(ctx context.Context, gc gateway.Client, name string, p ocispecs.Platform, ch choice, memo map[string]*Image) (*Image, error) {
	if out, ok := memo[name]; ok {
		return out, nil
	}
	img := b.byName[name]
	var parent *Image
	if img.Parent != "" {
		var err error
		if parent, err = b.compile(ctx, gc, img.Parent, p, ch, memo); err != nil {
			return nil, err
		}
	}
	out, err := Compile(ctx, img, p, Options{Resolver: b.resolver.with(pinned(gc, b.opt.Bases)), Parent: parent, Linear: b.opt.Linear, Attach: ch.attach[name], SeeAll: ch.seeAll[name]})
	if err != nil {
		return nil, err
	}
	memo[name] = out
	return out, nil
}

// solveChecked compiles name for p and solves it together with its
// detached-layer checks (and its parents'). A layer in a conflict is
// attached, a layer whose step failed detached (it may need a file of a
// layer it does not depend on, to delete or read) runs on every layer
// before it, and errRetry has the image compiled and solved again, until
// the checks pass: every round changes one more layer, so this ends, and a
// step that fails on every layer before it fails the build.
// Conflicts are rare, so the image is solved alongside the checks, not
// after them.
// Every layer of the image and its parents gets a warming build (warm.go).
func (b *builder) solveChecked(ctx context.Context, gc gateway.Client, name string, p ocispecs.Platform, imports []gateway.CacheOptionsEntry, so client.SolveOpt) (*Image, gateway.Reference, error) {
	// Decisions below compare with what this compile was given, not
	// with b.attach and b.seeAll now: another image's solve (a child
	// solves its parents' layers too) may have changed them meanwhile.
	was := b.chosen()
	compiled := map[string]*Image{}
	out, err := b.compile(ctx, gc, name, p, was, compiled)
	if err != nil {
		return nil, nil, err
	}
	b.warmLayers(compiled, blobAttrs(so.Exports), so)
	conflicts := make([][]Conflict, len(out.Checks))
	tools := make([]*CheckTools, len(out.Checks))
	var ref gateway.Reference
	// The checks and the image solve all finish before this returns (see
	// solve: no cancelling).
	var eg errgroup.Group
	for i, ch := range out.Checks {
		eg.Go(func() error {
			var err error
			conflicts[i], err = b.runCheck(ctx, gc, ch, imports)
			if errors.As(err, &tools[i]) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("image %q (%s): %w", ch.Image, platforms.Format(p), err)
			}
			return nil
		})
	}
	eg.Go(func() error {
		def, err := b.marshal(ctx, out.State)
		if err != nil {
			return fmt.Errorf("image %q (%s): %w", name, platforms.Format(p), err)
		}
		b.record(def)
		r, err := gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), CacheImports: imports, Evaluate: true})
		if err != nil {
			return err
		}
		ref, err = r.SingleRef()
		return err
	})
	if err := eg.Wait(); err != nil {
		if l, unseen := b.failedUnseeing(err, was); len(unseen) > 0 {
			if b.setOnce(b.seeAll, l.image, l.layer) {
				b.warn(fmt.Sprintf("image %q: layer %q builds on every layer before it: step %q failed on just the layers it depends on; one of %s is missing from its depends",
					l.image, l.layer, l.step, strings.Join(unseen, ", ")))
			}
			return nil, nil, errRetry
		}
		return nil, nil, err
	}
	more := false
	for i, t := range tools {
		if t == nil {
			continue
		}
		img := out.Checks[i].Image
		if b.attachAll(img) {
			b.warn(fmt.Sprintf("image %q: every layer builds attached: %v", img, t))
		}
		for _, s := range b.byName[img].Steps {
			more = more || s.Detach && !was.attach[img][s.Layer]
		}
	}
	for i, cs := range conflicts {
		img := out.Checks[i].Image
		for _, c := range cs {
			for _, l := range []string{c.Layer, c.Other} {
				if l == "" || was.attach[img][l] {
					continue
				}
				more = true
				if b.setOnce(b.attach, img, l) {
					b.warn(fmt.Sprintf("image %q: layer %q builds attached: %s is also written by %s", img, l, c.File, otherName(c, l)))
				}
			}
		}
	}
	if more {
		return nil, nil, errRetry
	}
	return out, ref, nil
}

// failedStep returns the labelled step err failed in.
func (b *builder) failedStep(err error) (label, bool) {
	var ve *errdefs.VertexError
	if !errors.As(err, &ve) {
		return label{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.labels[digest.Digest(ve.Digest)]
	return l, ok
}

// failedUnseeing returns the step err failed in, and the layers before it
// that its layer did not see in the compile ch gave (none once it sees
// every layer before it: then the failure is the Containerfile's too).
func (b *builder) failedUnseeing(err error, ch choice) (label, []string) {
	l, ok := b.failedStep(err)
	img := b.byName[l.image]
	if b.opt.Linear || !ok || l.layer == "" || img == nil || ch.seeAll[l.image][l.layer] {
		return l, nil
	}
	return l, unseen(Arrange(img, Options{Attach: ch.attach[l.image]}), l.layer)
}

// otherName names the other side of c, seen from layer.
func otherName(c Conflict, layer string) string {
	switch {
	case c.Other == "":
		return "an attached step after it"
	case layer == c.Other:
		return "layer " + strconv.Quote(c.Layer)
	}
	return "layer " + strconv.Quote(c.Other)
}

// decidedOf is what the checks decided for img and its parents.
func (b *builder) decidedOf(img *plan.Image) map[string]Decided {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]Decided{}
	for ; img != nil; img = b.byName[img.Parent] {
		d := Decided{Attached: slices.Sorted(maps.Keys(b.attach[img.Name])), SeeAll: slices.Sorted(maps.Keys(b.seeAll[img.Name]))}
		if len(d.Attached)+len(d.SeeAll) > 0 {
			out[img.Name] = d
		}
	}
	return out
}

// choice is what a compile is given: per image, the layers attached and
// the layers that run on every layer before them.
type choice struct{ attach, seeAll map[string]map[string]bool }

// chosen copies b.attach and b.seeAll as they are now.
func (b *builder) chosen() choice {
	b.mu.Lock()
	defer b.mu.Unlock()
	clone := func(m map[string]map[string]bool) map[string]map[string]bool {
		out := make(map[string]map[string]bool, len(m))
		for k, v := range m {
			out[k] = maps.Clone(v)
		}
		return out
	}
	return choice{clone(b.attach), clone(b.seeAll)}
}

// setOnce records image's layer in m (b.attach, b.seeAll); false if it
// was already there.
func (b *builder) setOnce(m map[string]map[string]bool, image, layer string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m[image] == nil {
		m[image] = map[string]bool{}
	}
	if m[image][layer] {
		return false
	}
	m[image][layer] = true
	return true
}

// attachAll attaches every layer of image; false if none was detached.
func (b *builder) attachAll(image string) bool {
	more := false
	for _, s := range b.byName[image].Steps {
		if s.Detach && b.setOnce(b.attach, image, s.Layer) {
			more = true
		}
	}
	return more
}

// unseen lists the detached layers before layer in img that it does not
// depend on: none of their files are there when it runs.
func unseen(img *plan.Image, layer string) []string {
	var out []string
	for _, s := range img.Steps {
		if s.Layer == layer {
			break
		}
		if s.Detach && !slices.Contains(out, s.Layer) && !slices.Contains(img.AllDepends(layer), s.Layer) {
			out = append(out, s.Layer)
		}
	}
	return out
}

func (b *builder) warn(msg string) {
	if b.opt.Warn != nil {
		b.opt.Warn(msg)
	}
}

// runCheck solves a check and reads its report.
func (b *builder) runCheck(ctx context.Context, gc gateway.Client, ch Check, imports []gateway.CacheOptionsEntry) ([]Conflict, error) {
	def, err := b.marshal(ctx, ch.State)
	if err != nil {
		return nil, err
	}
	b.record(def)
	r, err := gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), CacheImports: imports, Evaluate: true})
	if err != nil {
		return nil, err
	}
	ref, err := r.SingleRef()
	if err != nil {
		return nil, err
	}
	dt, err := ref.ReadFile(ctx, gateway.ReadRequest{Filename: CheckFile})
	if err != nil {
		return nil, fmt.Errorf("detached-layer check: %w", err)
	}
	return ParseConflicts(dt)
}

// marshal marshals st with the Build's local unique ID. Marshal draws a
// new one by default, which makes a layer's local files, and every step
// using them, different vertices in each definition: the image, its checks
// and its warming builds would each run such a step (BuildKit finds them
// equal only by their cache keys, once the files are transferred).
// With NoCache every vertex ignores BuildKit's cache.
func (b *builder) marshal(ctx context.Context, st bk.State) (*bk.Definition, error) {
	co := []bk.ConstraintsOpt{bk.LocalUniqueID(b.localID)}
	if b.opt.NoCache {
		co = append(co, bk.IgnoreCache)
	}
	return st.Marshal(ctx, co...)
}

// record remembers which step each vertex of a definition belongs to.
func (b *builder) record(def *bk.Definition) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for d, md := range def.Metadata {
		if img := md.Description[DescImage]; img != "" {
			b.labels[d] = label{image: img, layer: md.Description[DescLayer], step: md.Description[DescStep], name: md.Description["llb.customname"]}
		}
	}
}

// StepError is a failed build step: which image, layer and step, and the
// end of what it printed.
type StepError struct {
	Image, Layer, Step string
	Output             string
	Err                error
	vertex             digest.Digest
}

func (e *StepError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "image %q", e.Image)
	if e.Layer != "" {
		fmt.Fprintf(&sb, ", layer %q", e.Layer)
	}
	fmt.Fprintf(&sb, ", step %q: %v", e.Step, e.Err)
	if out := strings.TrimRight(e.Output, "\n"); out != "" {
		sb.WriteString("\noutput:")
		for line := range strings.SplitSeq(out, "\n") {
			sb.WriteString("\n  " + line)
		}
	}
	return sb.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// explain turns a solve error into one that names the failed step.
func (b *builder) explain(image string, err error, logs *logTail) error {
	var pe *parentError
	if errors.As(err, &pe) {
		return pe
	}
	var ve *errdefs.VertexError
	if errors.As(err, &ve) {
		d := digest.Digest(ve.Digest)
		b.mu.Lock()
		l, ok := b.labels[d]
		b.mu.Unlock()
		if ok {
			return &StepError{Image: l.image, Layer: l.layer, Step: l.step, Output: logs.get(d), Err: rootCause(err), vertex: d}
		}
	}
	return fmt.Errorf("image %q: %w", image, err)
}

// rootCause drops BuildKit's wrapping ("failed to solve: ...") but keeps the
// chain for errors.Is/As.
func rootCause(err error) error {
	var ve *errdefs.VertexError
	if errors.As(err, &ve) && ve.Unwrap() != nil {
		return ve.Unwrap()
	}
	return err
}

// joinUnique joins errors, reporting a failed step once even when several
// targets were built on it.
func joinUnique(errs []error) error {
	var out []error
	seen := map[digest.Digest]bool{}
	for _, err := range errs {
		if err == nil {
			continue
		}
		var se *StepError
		if errors.As(err, &se) {
			if seen[se.vertex] {
				continue
			}
			seen[se.vertex] = true
		}
		out = append(out, err)
	}
	return errors.Join(out...)
}

// logTail keeps the end of each vertex's output.
type logTail struct {
	mu   sync.Mutex
	logs map[digest.Digest][]byte
}

const logTailBytes = 8 << 10

func newLogTail() *logTail { return &logTail{logs: map[digest.Digest][]byte{}} }

func (t *logTail) add(s *client.SolveStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range s.Logs {
		b := append(t.logs[l.Vertex], l.Data...)
		if len(b) > logTailBytes {
			b = b[len(b)-logTailBytes:]
		}
		t.logs[l.Vertex] = b
	}
}

func (t *logTail) get(d digest.Digest) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.logs[d]
	if len(b) == logTailBytes { // cut: start at a line
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// gatewayCacheImports reads the cache imports the client passed to the
// build, for the build's own solves.
func gatewayCacheImports(opts map[string]string) ([]gateway.CacheOptionsEntry, error) {
	s := opts["cache-imports"]
	if s == "" {
		return nil, nil
	}
	var entries []*controlapi.CacheOptionsEntry
	if err := json.Unmarshal([]byte(s), &entries); err != nil {
		return nil, fmt.Errorf("cache imports: %w", err)
	}
	out := make([]gateway.CacheOptionsEntry, len(entries))
	for i, e := range entries {
		out[i] = gateway.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs}
	}
	return out, nil
}

// CacheFor gives each image a cache of its own: registry refs get the image
// name appended to their tag (repo:tag-image, or repo:image without a tag),
// local directories a subdirectory per image. Exporting one family member's
// cache then never overwrites another's.
func CacheFor(entries []client.CacheOptionsEntry, image string) []client.CacheOptionsEntry {
	var out []client.CacheOptionsEntry
	for _, e := range entries {
		attrs := map[string]string{}
		for k, v := range e.Attrs {
			attrs[k] = v
		}
		switch e.Type {
		case "registry":
			if ref, err := reference.ParseNormalizedNamed(attrs["ref"]); err == nil {
				if _, digested := ref.(reference.Digested); !digested {
					tag := image
					if t, ok := ref.(reference.Tagged); ok {
						tag = t.Tag() + "-" + image
					}
					if r, err := reference.WithTag(reference.TrimNamed(ref), tag); err == nil {
						attrs["ref"] = r.String()
					}
				}
			}
		case "local":
			for _, k := range []string{"src", "dest"} {
				if v, ok := attrs[k]; ok {
					attrs[k] = filepath.Join(v, image)
				}
			}
		}
		out = append(out, client.CacheOptionsEntry{Type: e.Type, Attrs: attrs})
	}
	return out
}

// resolveCache resolves each base image once per Build, so every target
// (and the parents compiled into it) is built on the same digest, and the
// shared parts of a family are the same vertices.
type resolveCache struct {
	mu sync.Mutex
	m  map[string]*resolved
}

type resolved struct {
	once sync.Once
	ref  string
	dgst digest.Digest
	cfg  []byte
	err  error
}

// with resolves misses through r.
func (c *resolveCache) with(r bk.ImageMetaResolver) bk.ImageMetaResolver {
	return resolverFunc(func(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
		key := ref
		if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
			key += " " + platforms.FormatAll(*opt.ImageOpt.Platform)
		}
		c.mu.Lock()
		e, ok := c.m[key]
		if !ok {
			e = &resolved{}
			c.m[key] = e
		}
		c.mu.Unlock()
		e.once.Do(func() { e.ref, e.dgst, e.cfg, e.err = r.ResolveImageConfig(ctx, ref, opt) })
		if e.err != nil {
			// Don't keep failures (a cancelled build must not poison the others).
			c.mu.Lock()
			if c.m[key] == e {
				delete(c.m, key)
			}
			c.mu.Unlock()
		}
		return e.ref, e.dgst, e.cfg, e.err
	})
}

// pinned resolves the references in bases by their digest.
func pinned(r bk.ImageMetaResolver, bases map[string]digest.Digest) bk.ImageMetaResolver {
	if len(bases) == 0 {
		return r
	}
	pins := map[string]digest.Digest{}
	for ref, d := range bases {
		if named, err := reference.ParseNormalizedNamed(ref); err == nil {
			pins[reference.TagNameOnly(named).String()] = d
		}
	}
	return resolverFunc(func(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
		if d, ok := pins[ref]; ok {
			if named, err := reference.ParseNormalizedNamed(ref); err == nil {
				if at, err := reference.WithDigest(named, d); err == nil {
					ref = at.String()
				}
			}
		}
		return r.ResolveImageConfig(ctx, ref, opt)
	})
}

type resolverFunc func(context.Context, string, sourceresolver.Opt) (string, digest.Digest, []byte, error)

func (f resolverFunc) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return f(ctx, ref, opt)
}
