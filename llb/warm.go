package llb

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/moby/buildkit/client"
	bk "github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
)

// Warm blobs.
//
// BuildKit compresses an image's layers when it exports the image, after
// its last step; a distribution's packages take about as long to compress
// as to install, and a cold build waits for it at the end. A build
// therefore also exports each of the image's layers on its own (see
// layerStates), as soon as it is solved, to an image with no name: that goes
// nowhere, but the layer gets its blob, kept with its cache record, while
// the later steps run, and the image's export (and every image built on
// it) finds the blob made. It is the export's own blob: the same layer,
// compressed with the same options. A warming build records no build
// history, and its errors are the image solve's too, which reports them.

// compressionKeys are the exporter attributes that decide a layer's blob.
var compressionKeys = []string{"compression", "compression-level", "force-compression"}

// blobAttrs are the attributes of entries that decide the blobs: those of
// the first entry that has any (one solve's exports share its layers).
func blobAttrs(entries []client.ExportEntry) map[string]string {
	for _, e := range entries {
		out := map[string]string{}
		for _, k := range compressionKeys {
			if v, ok := e.Attrs[k]; ok {
				out[k] = v
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return map[string]string{}
}

// warmer runs the warming builds of one Build.
type warmer struct {
	c    *client.Client
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu   sync.Mutex
	seen map[string]bool // definition head + blob attributes
}

func newWarmer(ctx context.Context, c *client.Client) *warmer {
	ctx, stop := context.WithCancel(ctx)
	return &warmer{c: c, ctx: ctx, stop: stop, seen: map[string]bool{}}
}

// close ends the warming builds still running (every target is exported:
// what they would make is made or not needed) and waits for them.
func (w *warmer) close() {
	w.stop()
	w.wg.Wait()
}

// start returns whether key is new, marking it started.
func (w *warmer) start(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[key] {
		return false
	}
	w.seen[key] = true
	return true
}

// warmLayers starts a warming build for each layer state of imgs (see
// layerStates) not warmed with attrs yet. so is the image solve's options:
// sessions, local files, cache imports.
func (b *builder) warmLayers(imgs map[string]*Image, attrs map[string]string, so client.SolveOpt) {
	w := b.warm
	if w == nil {
		return
	}
	suffix := attrsKey(attrs)
	for _, img := range imgs {
		for _, st := range layerStates(img.State) {
			def, err := b.marshal(w.ctx, st.SetMarshalDefaults(bk.Platform(img.Platform)))
			if err != nil {
				continue // the image's own marshal reports it
			}
			head, err := def.Head()
			if err != nil || !w.start(head.String()+suffix) {
				continue
			}
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				w.build(def, attrs, so)
			}()
		}
	}
}

// layerStates returns the states whose exports make the blobs of st's, as
// BuildKit lays out st's layers: a merge has its inputs' layers; a diff is
// its own (BuildKit reuses the upper's blob when the upper is one layer on
// the lower, else makes one for the diff); a step is a layer on its
// input's. A base image's layers have their blobs already.
func layerStates(st bk.State) []bk.State {
	var out []bk.State
	seen := map[bk.Output]bool{}
	var walk func(o bk.Output)
	walk = func(o bk.Output) {
		if o == nil || seen[o] {
			return
		}
		seen[o] = true
		switch v := o.Vertex(context.Background(), nil).(type) {
		case *bk.MergeOp:
			for _, in := range v.Inputs() {
				walk(in)
			}
		case *bk.DiffOp:
			out = append(out, bk.NewState(o))
		case *bk.ExecOp, *bk.FileOp:
			// The layer below: an exec's root mount sorts first, a file
			// op's base state comes before what it copies from.
			if ins := v.Inputs(); len(ins) > 0 {
				walk(ins[0])
			}
			out = append(out, bk.NewState(o))
		}
	}
	walk(st.Output())
	return out
}

// build exports def's result to an image with no name.
func (w *warmer) build(def *bk.Definition, attrs map[string]string, so client.SolveOpt) {
	so.Exports = []client.ExportEntry{{Type: client.ExporterImage, Attrs: maps.Clone(attrs)}}
	so.FrontendAttrs = map[string]string{}
	so.CacheExports = nil
	so.Internal = true
	_, _ = w.c.Build(w.ctx, so, "ov", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		imports, err := gatewayCacheImports(gc.BuildOpts().Opts)
		if err != nil {
			return nil, err
		}
		return gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), CacheImports: imports, Evaluate: true})
	}, nil)
}

func attrsKey(attrs map[string]string) string {
	var sb strings.Builder
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		sb.WriteString(" " + k + "=" + attrs[k])
	}
	return sb.String()
}
