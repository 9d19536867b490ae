// Package export sends built images to their destinations: an OCI layout
// directory, an OCI archive, a registry (push), or a container engine's
// store (load, docker or podman). Each destination (a Dest, one a file) takes
// either BuildKit's export of an image or, behind Merging, the image index
// rewritten after the export. llb.Build calls an Exporter once per image.
package export

import (
	"context"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/plan"
)

// An Exporter sends built images somewhere. llb.Build calls Prepare once per
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

// Dest is one destination. It takes either BuildKit's export of the image
// (Prepare) or, for an image rewritten after BuildKit's export (Merging), the
// finished image index (Deliver).
type Dest interface {
	Exporter
	// Check rejects what Prepare and Deliver would reject, before the
	// image is built.
	Check(img *plan.Image, ps []ocispecs.Platform) error
	// Scratch is a directory on the destination's filesystem for temp
	// data, "" when it has none.
	Scratch(img *plan.Image) string
	// Deliver publishes idx. Its unchanged blobs are also in the OCI layout
	// at src, for hard links.
	Deliver(ctx context.Context, img *plan.Image, idx v1.ImageIndex, src string) error
	// Describe says what Deliver does with img, for the progress.
	Describe(img *plan.Image) string
	// Holds reports whether the destination still has img as built
	// exported it, under img's current tags; where that takes only a new
	// name for what is there (a new tag in the registry or the engine, a
	// layout's ref names), it gives it. False means export again: a build
	// with unchanged inputs skips only what every destination holds.
	Holds(ctx context.Context, img *plan.Image, built Built) (bool, error)
}

// Built is what a build exported for an image (BuildKit's exporter
// response), as its build record keeps it.
type Built struct {
	Digest string // the image index or manifest
	Config string // the image config, for a one-platform image ("" otherwise)
}

var (
	_ Dest     = ociLayout{}
	_ Dest     = ociArchive{}
	_ Dest     = push{}
	_ Dest     = load{}
	_ Exporter = multi{}
	_ Exporter = (*merging)(nil)
	_ Exporter = (*encodingExp)(nil)

	_ BaseLayers = (*encodeExport)(nil)
	_ BaseLayers = multiExport(nil)
)

// Multi exports to every exporter at once (one solve, several exports).
func Multi[E Exporter](exps ...E) Exporter {
	m := make(multi, len(exps))
	for i, e := range exps {
		m[i] = e
	}
	return m
}

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

// SetBaseLayers tells the exports that need it (BaseLayers).
func (m multiExport) SetBaseLayers(base map[string][]v1.Hash) {
	for _, x := range m {
		if bl, ok := x.(BaseLayers); ok {
			bl.SetBaseLayers(base)
		}
	}
}

func (m multiExport) Abort() {
	for _, x := range m {
		x.Abort()
	}
}

// tagNames is the exporter "name" attribute: every tag, comma-separated.
func tagNames(img *plan.Image) string { return strings.Join(img.Tags, ",") }

type entryExport []client.ExportEntry

func (e entryExport) Entries() []client.ExportEntry                     { return e }
func (entryExport) Commit(context.Context, *client.SolveResponse) error { return nil }
func (entryExport) Abort()                                              {}
