package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/builder"
	"github.com/overthink/ov/explain"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// baseTimeout bounds resolving the base digests: a registry that does not
// answer leaves them unknown rather than holding up the build.
const baseTimeout = 20 * time.Second

// connectAddr is Connect that also says which builder it reached: the
// build record is only good for that builder's cache.
func (f *BuilderFlags) connectAddr(ctx context.Context, g *Globals) (*client.Client, string, error) {
	c, addr, err := builder.ConnectAddr(ctx, f.Options(g))
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", &userError{err: err}
	}
	return c, addr, nil
}

// buildRecord is what a build is made of, fingerprinted before it starts
// (explain.Record per image) and written under .build/state/ for the
// images that built.
type buildRecord struct {
	dir    string
	plans  []*plan.Image
	recs   map[string]*explain.Record
	inputs map[string]explain.Inputs
	bases  func(wait time.Duration) map[string]explain.Base // the base digests, waiting at most wait (0: until resolved)
}

// record fingerprints the family's inputs. With --explain it waits for the
// base digests and prints what will be reused and rebuilt; otherwise the
// digests resolve while the build runs.
func (c *BuildCmd) record(ctx context.Context, g *Globals, p *spec.Project, plans []*plan.Image, narrow []ocispecs.Platform, addr string) (*buildRecord, error) {
	offline, _ := envBool("OV_OFFLINE")
	b := &buildRecord{dir: p.Dir, plans: plans, recs: map[string]*explain.Record{}, inputs: map[string]explain.Inputs{},
		bases: resolveBases(ctx, plans, narrow, c.OfflineUser || offline)}
	for _, img := range plans {
		in := explain.Inputs{Builder: addr, Platforms: platformNames(img, narrow), Layers: p.Layers}
		// Layers the last build's check attached are expected attached
		// again.
		var attached []string
		if old := explain.Read(p.Dir, img.Name); old != nil {
			attached = old.Attached
		}
		r, err := fingerprint(img, in, attached)
		if err != nil {
			return nil, userErrorf("image %q: %v", img.Name, err)
		}
		b.recs[img.Name], b.inputs[img.Name] = r, in
	}
	if !c.Explain {
		return b, nil
	}
	cur := b.withBases(0)
	reps := explain.Family(cur, func(image string) *explain.Record { return explain.Read(p.Dir, image) })
	return b, explain.Print(g.Stdout, reps)
}

// fingerprint is explain.Fingerprint of img with attached layers attached.
func fingerprint(img *plan.Image, in explain.Inputs, attached []string) (*explain.Record, error) {
	r, err := explain.Fingerprint(img.Attach(attached), in)
	if err != nil {
		return nil, err
	}
	r.Attached = attached
	return r, nil
}

// withBases fills in the base digests, waiting for them at most wait (0:
// as long as they take).
func (b *buildRecord) withBases(wait time.Duration) []*explain.Record {
	bases := b.bases(wait)
	out := make([]*explain.Record, len(b.plans))
	for i, img := range b.plans {
		r := b.recs[img.Name]
		r.SetBase(bases[img.External])
		out[i] = r
	}
	return out
}

// write records the built images and the parents they were built on.
func (b *buildRecord) write(w io.Writer, results []llb.Result) {
	if len(results) == 0 {
		return
	}
	built := map[string]bool{}
	byName := map[string]*plan.Image{}
	for _, img := range b.plans {
		byName[img.Name] = img
	}
	attached := map[string][]string{}
	for _, res := range results {
		for img := byName[res.Image]; img != nil; img = byName[img.Parent] {
			built[img.Name] = true
		}
		maps.Copy(attached, res.Attached)
	}
	// A layer the check attached (or no longer did) changes what was built.
	for name := range built {
		if r := b.recs[name]; !slices.Equal(r.Attached, attached[name]) {
			if nr, err := fingerprint(byName[name], b.inputs[name], attached[name]); err == nil {
				b.recs[name] = nr
			}
		}
	}
	// A build is not held up by a slow registry: a digest still unknown
	// is recorded as such.
	for _, r := range b.withBases(2 * time.Second) {
		if !built[r.Image] {
			continue
		}
		if err := explain.Write(b.dir, r); err != nil {
			fmt.Fprintf(w, "ov: warning: %v (ov build --explain will not know this build)\n", err)
		}
	}
}

// resolveBases resolves each distinct external base once, in the
// background; the returned function waits for the results, keyed by
// reference.
func resolveBases(ctx context.Context, plans []*plan.Image, narrow []ocispecs.Platform, offline bool) func(time.Duration) map[string]explain.Base {
	want := map[string][]string{}
	for _, img := range plans {
		if img.External == "" {
			continue
		}
		for _, p := range platformNames(img, narrow) {
			if !slices.Contains(want[img.External], p) {
				want[img.External] = append(want[img.External], p)
			}
		}
	}
	out := make(map[string]explain.Base, len(want))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for ref, ps := range want {
		if offline {
			out[ref] = explain.Base{Err: fmt.Errorf("offline")}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, baseTimeout)
			defer cancel()
			b := explain.ResolveBase(rctx, ref, ps)
			mu.Lock()
			out[ref] = b
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return func(wait time.Duration) map[string]explain.Base {
		var timeout <-chan time.Time
		if wait > 0 {
			timeout = time.After(wait)
		}
		select {
		case <-done:
		case <-timeout:
		}
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(out)
	}
}

// platformNames are the platforms img builds for in this run.
func platformNames(img *plan.Image, narrow []ocispecs.Platform) []string {
	ps, err := llb.Platforms(img, narrow)
	if err != nil {
		return img.Platforms
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = platforms.Format(p)
	}
	return out
}
