package export

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/overthink/ov/plan"
)

// Progress reports one phase of an export that runs on ov's side (encoding
// layers, a push, a load), after BuildKit's own export: start returns the
// function to call when the phase ends.
type Progress func(name string) (done func(error))

type progressKey struct{}

// WithProgress has Commit report its phases to p (llb.Build shows them
// among BuildKit's own).
func WithProgress(ctx context.Context, p Progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// phase starts reporting a phase named name, if ctx asks for it.
func phase(ctx context.Context, name string) func(error) {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok && p != nil {
		return p(name)
	}
	return func(error) {}
}

// deliver hands idx to each destination, a phase each.
func deliver(ctx context.Context, dests []Dest, img *plan.Image, idx v1.ImageIndex, src string) error {
	for _, d := range dests {
		done := phase(ctx, d.Describe(img))
		err := d.Deliver(ctx, img, idx, src)
		done(err)
		if err != nil {
			return err
		}
	}
	return nil
}
