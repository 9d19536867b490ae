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

	"github.com/overthink/ov/explain"
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
}

// Prepared is a build whose inputs are fingerprinted (the base digests
// resolve in the background), ready to explain and run.
type Prepared struct {
	req Request
	rec *record
}

// Report is what a build did.
type Report struct {
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
	return explain.Family(p.rec.withBases(0), func(image string) *explain.Record { return explain.Read(p.req.Project.Dir, image) })
}

// Run builds the request on c with opt (its Family, Targets and Platforms
// are the request's) and records the images built.
func (p *Prepared) Run(ctx context.Context, c *client.Client, opt llb.BuildOptions) (Report, error) {
	opt.Family, opt.Targets, opt.Platforms = p.req.Family, p.req.Targets, p.req.Platforms
	results, err := llb.Build(ctx, c, opt)
	return Report{Results: results, RecordErrs: p.rec.write(results)}, err
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
