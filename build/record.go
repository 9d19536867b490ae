package build

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/overthink/ov/explain"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
)

// baseTimeout bounds resolving the base digests: a registry that does not
// answer leaves them unknown rather than holding up the build.
const baseTimeout = 20 * time.Second

// record is what a build is made of, fingerprinted before it starts
// (explain.Record per image) and written under .build/state/ for the
// images that built.
type record struct {
	dir    string
	fresh  bool // decide the detached layers afresh (Request.Force)
	family []*plan.Image
	recs   map[string]*explain.Record
	olds   map[string]*explain.Record // the last build's records, read once
	inputs map[string]explain.Inputs
	bases  func(wait time.Duration) map[string]explain.Base // the base digests, waiting at most wait (0: until resolved)
}

// newRecord fingerprints the family's inputs, several images at a time
// (each file hashed once, and only when the stat cache does not know it);
// the base digests resolve in the background.
func newRecord(ctx context.Context, req Request) (*record, error) {
	narrow := req.Platforms
	r := &record{dir: req.Project.Dir, fresh: req.Force, family: req.Family, recs: map[string]*explain.Record{}, olds: map[string]*explain.Record{}, inputs: map[string]explain.Inputs{},
		bases: resolveBases(ctx, req.Family, narrow, req.Offline)}
	files := explain.OpenFiles(req.Project.Dir)
	recs, olds := make([]*explain.Record, len(req.Family)), make([]*explain.Record, len(req.Family))
	ins := make([]explain.Inputs, len(req.Family))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, img := range req.Family {
		g.Go(func() error {
			in := explain.Inputs{Builder: req.Builder, Platforms: platformNames(img, narrow), Layers: req.Project.Layers, Files: files}
			olds[i] = explain.Read(req.Project.Dir, img.Name)
			fp, err := fingerprint(img, in, r.seed(olds[i]))
			if err != nil {
				return fmt.Errorf("image %q: %w", img.Name, err)
			}
			recs[i], ins[i] = fp, in
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, img := range req.Family {
		r.recs[img.Name], r.olds[img.Name], r.inputs[img.Name] = recs[i], olds[i], ins[i]
	}
	// The cache only saves time: a run that cannot write it hashes again.
	files.Save()
	return r, nil
}

// fingerprint is explain.Fingerprint of img arranged as d decides.
func fingerprint(img *plan.Image, in explain.Inputs, d llb.Decided) (*explain.Record, error) {
	r, err := explain.Fingerprint(llb.Arrange(img, d.Options()), in)
	if err != nil {
		return nil, err
	}
	r.Attached, r.SeeAll = d.Attached, d.SeeAll
	return r, nil
}

// decided is what the checks of rec's build decided (none without rec).
func decided(rec *explain.Record) llb.Decided {
	if rec == nil {
		return llb.Decided{}
	}
	return llb.Decided{Attached: rec.Attached, SeeAll: rec.SeeAll}
}

// seed is what the build starts from: the decisions of old's build, none
// when forced (a user forcing a build suspects something: it starts from
// the plain plan and its checks decide again).
func (r *record) seed(old *explain.Record) llb.Decided {
	if r.fresh {
		return llb.Decided{}
	}
	return decided(old)
}

// decisions are the last build's decisions per image, for llb.Build to
// start from; an image whose depends changed since starts afresh (a
// depends added is how a user answers a notice), and so does every image
// of a forced build.
func (r *record) decisions() map[string]llb.Decided {
	out := map[string]llb.Decided{}
	for name, old := range r.olds {
		d := r.seed(old)
		if len(d.Attached)+len(d.SeeAll) > 0 && sameDepends(old.Depends, r.recs[name].Depends) {
			out[name] = d
		}
	}
	return out
}

func sameDepends(a, b map[string][]string) bool {
	return maps.EqualFunc(withoutEmpty(a), withoutEmpty(b), slices.Equal[[]string])
}

func withoutEmpty(m map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

// withBases fills in the base digests, waiting for them at most wait (0:
// as long as they take).
func (r *record) withBases(wait time.Duration) []*explain.Record {
	bases := r.bases(wait)
	out := make([]*explain.Record, len(r.family))
	for i, img := range r.family {
		rec := r.recs[img.Name]
		rec.SetBase(bases[img.External])
		out[i] = rec
	}
	return out
}

// write records the built images and the parents they were built on; a
// target records the digest it exported and its outputs.
func (r *record) write(results []llb.Result, outputs map[string]string) []error {
	if len(results) == 0 {
		return nil
	}
	built := map[string]bool{}
	images := byName(r.family)
	dec := map[string]llb.Decided{}
	exported := map[string]map[string]string{}
	for _, res := range results {
		for img := images[res.Image]; img != nil; img = images[img.Parent] {
			built[img.Name] = true
		}
		maps.Copy(dec, res.Decided)
		exported[res.Image] = res.ExporterResponse
	}
	// A decision of the checks changes what was built.
	for name := range built {
		d := dec[name]
		if rec := r.recs[name]; !slices.Equal(rec.Attached, d.Attached) || !slices.Equal(rec.SeeAll, d.SeeAll) {
			if nr, err := fingerprint(images[name], r.inputs[name], d); err == nil {
				r.recs[name] = nr
			}
		}
	}
	// A build is not held up by a slow registry: a digest still unknown
	// is recorded as such.
	var errs []error
	for _, rec := range r.withBases(2 * time.Second) {
		if !built[rec.Image] {
			continue
		}
		resp := exported[rec.Image]
		rec.Exported, rec.ExportedConfig, rec.Outputs = resp[exptypes.ExporterImageDigestKey], resp[exptypes.ExporterImageConfigDigestKey], ""
		if rec.Exported != "" {
			rec.Outputs = outputs[rec.Image]
		}
		if err := explain.Write(r.dir, rec); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// resolveBases resolves each distinct external base once, in the
// background; the returned function waits for the results, keyed by
// reference.
func resolveBases(ctx context.Context, family []*plan.Image, narrow []ocispecs.Platform, offline bool) func(time.Duration) map[string]explain.Base {
	want := map[string][]string{}
	for _, img := range family {
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

// Decisions are what the checks of each family image's last recorded
// build decided (llb.BuildOptions.Decided): ov verify rebuilds an image
// arranged as the build it compares with.
func Decisions(dir string, family []*plan.Image) map[string]llb.Decided {
	out := map[string]llb.Decided{}
	for _, img := range family {
		if d := decided(explain.Read(dir, img.Name)); len(d.Attached)+len(d.SeeAll) > 0 {
			out[img.Name] = d
		}
	}
	return out
}

// Bases are the digests family's external bases resolved to in their
// last builds (llb.BuildOptions.Bases), by reference.
func Bases(dir string, family []*plan.Image) map[string]digest.Digest {
	out := map[string]digest.Digest{}
	for _, img := range family {
		if rec := explain.Read(dir, img.Name); img.External != "" && rec != nil && !rec.Parent && rec.Base == img.External && rec.Digest != "" {
			out[img.External] = digest.Digest(rec.Digest)
		}
	}
	return out
}
