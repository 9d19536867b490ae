// Package build is ov's build pipeline as a library call: Plan plans the
// targets and the parents they build on; Run fingerprints their inputs,
// optionally explains what will be reused, solves them on a buildkitd
// (llb.Build) and records what was built under .build/state/ (explain).
// cmd/ov turns flags into a Request and prints the Report; the tests call
// the same functions.
package build

import (
	"context"
	"fmt"
	"slices"

	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/overthink/ov/explain"
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// Plan plans images (every enabled image when none is named) of p and the
// parents they build on. It returns the family and the targets, checked
// to build for at least one of narrow's platforms.
func Plan(ctx context.Context, p *spec.Project, images []string, opt plan.Options, narrow []ocispecs.Platform) (family []*plan.Image, targets []string, err error) {
	family, err = plan.BuildContext(ctx, p, images, opt)
	if err != nil {
		return nil, nil, err
	}
	targets = slices.Clone(images)
	if len(targets) == 0 {
		for _, img := range family {
			targets = append(targets, img.Name)
		}
	}
	for _, n := range targets {
		img := byName(family)[n]
		if img == nil {
			return nil, nil, fmt.Errorf("image %q is not in the build plan", n)
		}
		if _, err := llb.Platforms(img, narrow); err != nil {
			return nil, nil, &PlatformError{Err: err}
		}
	}
	return family, targets, nil
}

// PlatformError says a target builds for none of the requested platforms.
type PlatformError struct{ Err error }

func (e *PlatformError) Error() string { return e.Err.Error() }
func (e *PlatformError) Unwrap() error { return e.Err }

// Request is one build of a planned family.
type Request struct {
	Project *spec.Project
	Family  []*plan.Image // from Plan
	Targets []string
	// Platforms narrow each image's platforms (none: all of them).
	Platforms []ocispecs.Platform
	// Builder is the address of the buildkitd: a build record is good for
	// that builder's cache only.
	Builder string
	// Offline leaves base digests unresolved (recorded as unknown).
	Offline bool

	// Dests are where the images go (the exporter Run is given sends
	// them there) and Outputs says so per target, in a string the caller
	// makes (its destinations, merge, platforms, --no-detach): a target
	// whose inputs and outputs are those of its last build, and whose
	// every destination still holds what that build exported, is up to
	// date and not built, whichever other images this build names.
	Dests   []export.Dest
	Outputs map[string]string
	// Force builds every target, up to date or not.
	Force bool
}

// Prepared is a build whose inputs are fingerprinted (the base digests
// resolve in the background), ready to explain and run.
type Prepared struct {
	req Request
	rec *record
}

// Report is what a build did.
type Report struct {
	// UpToDate are the targets not built: nothing changed since their
	// last build and their destinations still hold it.
	UpToDate []string
	// Results are the images built, also when the build failed for others.
	Results []llb.Result
	// RecordErrs are build records that could not be written: the build
	// stands, but ov build --explain will not know it.
	RecordErrs []error
}

// Prepare fingerprints req's inputs. The fingerprints are taken before
// the build: a file edited while it runs is not recorded as built.
func Prepare(ctx context.Context, req Request) (*Prepared, error) {
	rec, err := newRecord(ctx, req)
	if err != nil {
		return nil, err
	}
	return &Prepared{req: req, rec: rec}, nil
}

// Explain says per image and layer what the build will reuse and rebuild,
// compared with the last build recorded; it waits for the base digests.
func (p *Prepared) Explain() []explain.Report {
	return explain.Family(p.rec.withBases(0), func(image string) *explain.Record { return p.rec.olds[image] })
}

// Run builds the request on c with opt (its Family, Targets and Platforms
// are the request's) and records the images built.
func (p *Prepared) Run(ctx context.Context, c *client.Client, opt llb.BuildOptions) (Report, error) {
	var rep Report
	if !p.req.Force {
		rep.UpToDate = p.upToDate(ctx)
	}
	opt.Family, opt.Platforms, opt.Decided = p.req.Family, p.req.Platforms, p.rec.decisions()
	opt.Targets = slices.DeleteFunc(slices.Clone(p.req.Targets), func(t string) bool { return slices.Contains(rep.UpToDate, t) })
	if len(opt.Targets) == 0 {
		if opt.Status != nil {
			close(opt.Status) // as llb.Build does when it ends
		}
		return rep, nil
	}
	var err error
	rep.Results, err = llb.Build(ctx, c, opt)
	rep.RecordErrs = p.Record(rep.Results)
	return rep, err
}

// Record writes the build records of results (images built, as llb.Build
// returns them) and the parents they were built on; Run calls it after
// the solve.
func (p *Prepared) Record(results []llb.Result) []error {
	return p.rec.write(results, p.req.Outputs)
}

// upToDate lists the targets with nothing to do: the same inputs (as
// Explain compares them: steps, files, depends, the parent, the base's
// digest, the builder) and outputs as their last build, and every
// destination still holds what it exported. Anything unknown (no record,
// a base digest not resolved, here or in a parent) means build.
func (p *Prepared) upToDate(ctx context.Context) []string {
	// The cheap test first: without a record of these outputs there is
	// nothing to wait for the base digests for.
	olds := map[string]*explain.Record{}
	for _, t := range p.req.Targets {
		if old := p.rec.olds[t]; old != nil && old.Exported != "" && old.Outputs == p.req.Outputs[t] {
			olds[t] = old
		}
	}
	if len(olds) == 0 {
		return nil
	}
	images := byName(p.req.Family)
	same := map[string]bool{} // inputs known unchanged, parents first
	var cands []string
	for _, rep := range p.Explain() {
		cur := p.rec.recs[rep.Image]
		base := cur.Digest != ""
		if cur.Parent {
			base = same[cur.Base]
		}
		same[rep.Image] = !rep.Rebuild && base
		if olds[rep.Image] != nil && same[rep.Image] {
			cands = append(cands, rep.Image)
		}
	}
	// The destinations are asked about several images at a time: a HEAD
	// per tag adds up over a large family.
	ok := make([]bool, len(cands))
	var g errgroup.Group
	g.SetLimit(holdsParallel)
	for i, name := range cands {
		g.Go(func() error {
			old := olds[name]
			ok[i] = p.holds(ctx, images[name], export.Built{Digest: old.Exported, Config: old.ExportedConfig})
			return nil
		})
	}
	g.Wait()
	var out []string
	for i, name := range cands {
		if ok[i] {
			out = append(out, name)
		}
	}
	return out
}

// holdsParallel bounds the images whose destinations are checked at once.
const holdsParallel = 8

// holds reports whether every destination holds img as built.
func (p *Prepared) holds(ctx context.Context, img *plan.Image, built export.Built) bool {
	for _, d := range p.req.Dests {
		if ok, err := d.Holds(ctx, img, built); err != nil || !ok {
			return false
		}
	}
	return len(p.req.Dests) > 0
}

// Run prepares req and runs it on c with opt.
func Run(ctx context.Context, c *client.Client, req Request, opt llb.BuildOptions) (Report, error) {
	p, err := Prepare(ctx, req)
	if err != nil {
		return Report{}, err
	}
	return p.Run(ctx, c, opt)
}

func byName(family []*plan.Image) map[string]*plan.Image {
	m := make(map[string]*plan.Image, len(family))
	for _, img := range family {
		m[img.Name] = img
	}
	return m
}
