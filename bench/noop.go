package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/build"
	"github.com/overthink/ov/explain"
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// NoopTarget is what a no-op `ov build --push` of the synthetic project
// must take at most.
const NoopTarget = time.Second

// NoopScaleResult is the no-op at scale: `ov build --push` of every image
// of a WriteProject project with nothing changed since the recorded build,
// in-process, by phase, one sample per run.
type NoopScaleResult struct {
	Scale  Scale
	Images int
	Tags   int // registry tags checked per run (a HEAD each)
	// Validate (spec.Load), Plan (build.Plan), Fingerprint (build.Prepare,
	// the stat cache warm) and Checks (Run: the base digests, the tags;
	// nothing built).
	Validate, Plan, Fingerprint, Checks []time.Duration
	// CPU is the process's CPU time (user + system) over each run: on a
	// busy machine wall time grows with the load, CPU time much less.
	CPU []time.Duration
	// ColdFingerprint is build.Prepare once without the stat cache (every
	// file hashed).
	ColdFingerprint time.Duration
	Load            string // load average before the runs
}

// Total is the median of the runs' sums.
func (r NoopScaleResult) Total() time.Duration {
	sums := make([]time.Duration, len(r.Validate))
	for i := range sums {
		sums[i] = r.Validate[i] + r.Plan[i] + r.Fingerprint[i] + r.Checks[i]
	}
	return Median(sums)
}

// noopBases are the synthetic project's external bases: placeholders (a
// copy of busybox) under each one's mirror path in the registry, so each
// resolves to a digest as a real base would.
var noopBases = map[string]string{
	"library/debian:bookworm": "", "library/ubuntu:24.04": "", "fedora/fedora:43": "", "fedora:42": "",
}

// MeasureNoopScale writes a WriteProject project of s pushing to registry
// (a loopback registry holding library/busybox:latest), seeds a build
// record per image as a build pushing every image would leave it, and
// times runs no-op builds on bc (which must build nothing). The records
// are written by build.Prepared.Record from the real fingerprints and
// digests of images really pushed under every tag; those images are small
// placeholders, not builds of the synthetic images (they need packages
// this host cannot fetch): the no-op compares digests, never content.
func MeasureNoopScale(ctx context.Context, bc *client.Client, work, registry string, s Scale, runs int) (*NoopScaleResult, error) {
	dir := filepath.Join(work, "noop-scale")
	if err := WriteProject(dir, s); err != nil {
		return nil, err
	}
	yml := filepath.Join(dir, "images.yml")
	b, err := os.ReadFile(yml)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(yml, bytes.Replace(b, []byte("registry: ghcr.io/ov-bench"), []byte("registry: "+registry+"/scale"), 1), 0o644); err != nil {
		return nil, err
	}
	for ref := range noopBases {
		if err := crane.Copy(registry+"/library/busybox:latest", registry+"/"+ref, crane.Insecure); err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
	}
	os.Setenv(baseuser.MirrorsEnv, "docker.io="+registry+",quay.io="+registry+",registry.fedoraproject.org="+registry)

	push := export.Push()
	request := func() (build.Request, time.Duration, time.Duration, error) {
		start := time.Now()
		p, err := spec.Load(dir)
		if err != nil {
			return build.Request{}, 0, 0, err
		}
		validated := time.Now()
		family, targets, err := build.Plan(ctx, p, nil, plan.Options{CalVer: "2026.1.0", Users: baseuser.Offline}, nil)
		if err != nil {
			return build.Request{}, 0, 0, err
		}
		outputs := map[string]string{}
		for _, t := range targets {
			outputs[t] = "push"
		}
		return build.Request{Project: p, Family: family, Targets: targets, Builder: "bench", Dests: []export.Dest{push}, Outputs: outputs},
			validated.Sub(start), time.Since(validated), nil
	}

	req, _, _, err := request()
	if err != nil {
		return nil, err
	}
	res := &NoopScaleResult{Scale: s, Images: len(req.Targets)}
	if err := seedNoop(ctx, req, registry); err != nil {
		return nil, err
	}
	for _, img := range req.Family {
		res.Tags += len(img.Tags)
	}

	res.Load = LoadAvg()
	for i := -1; i < runs; i++ {
		if i == -1 { // the stat cache's first run, not a sample
			if err := os.Remove(filepath.Join(dir, explain.StatCache)); err != nil && !os.IsNotExist(err) {
				return nil, err
			}
		}
		cpu := ProcessCPU()
		req, validate, planned, err := request()
		if err != nil {
			return nil, err
		}
		start := time.Now()
		prep, err := build.Prepare(ctx, req)
		if err != nil {
			return nil, err
		}
		fingerprinted := time.Now()
		rep, err := prep.Run(ctx, bc, llb.BuildOptions{Exporter: push})
		if err != nil {
			return nil, err
		}
		if len(rep.UpToDate) != len(req.Targets) {
			return nil, fmt.Errorf("no-op at scale: %d of %d images up to date", len(rep.UpToDate), len(req.Targets))
		}
		if i == -1 {
			res.ColdFingerprint = fingerprinted.Sub(start)
			continue
		}
		res.Validate = append(res.Validate, validate)
		res.Plan = append(res.Plan, planned)
		res.Fingerprint = append(res.Fingerprint, fingerprinted.Sub(start))
		res.Checks = append(res.Checks, time.Since(fingerprinted))
		res.CPU = append(res.CPU, ProcessCPU()-cpu)
	}
	return res, nil
}

// seedNoop pushes a small image per target under all its tags and records
// it as that target's build, as Run records what it pushed.
func seedNoop(ctx context.Context, req build.Request, registry string) error {
	prep, err := build.Prepare(ctx, req)
	if err != nil {
		return err
	}
	var results []llb.Result
	for _, img := range req.Family {
		im, err := crane.Image(map[string][]byte{"image": []byte(img.Name)})
		if err != nil {
			return err
		}
		for _, tag := range img.Tags {
			if !strings.HasPrefix(tag, registry+"/") {
				return fmt.Errorf("tag %s is not in %s", tag, registry)
			}
			if err := crane.Push(im, tag, crane.Insecure, crane.WithContext(ctx)); err != nil {
				return err
			}
		}
		d, err := im.Digest()
		if err != nil {
			return err
		}
		cfg, err := im.ConfigName()
		if err != nil {
			return err
		}
		results = append(results, llb.Result{Image: img.Name, ExporterResponse: map[string]string{
			exptypes.ExporterImageDigestKey: d.String(), exptypes.ExporterImageConfigDigestKey: cfg.String()}})
	}
	if errs := prep.Record(results); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// markdown renders the section of the report.
func (r *NoopScaleResult) markdown(b *bytes.Buffer) {
	if r == nil || len(r.Validate) == 0 {
		return
	}
	fmt.Fprintf(b, "## No-op at scale (%d images, %d layers, seed %d)\n\n", r.Scale.Images, r.Scale.Layers, r.Scale.Seed)
	met := "no"
	if r.Total() < NoopTarget {
		met = "yes"
	}
	fmt.Fprintf(b, "`ov build --push` of the %d images with nothing changed (in-process: validate + plan + fingerprint + registry checks, "+
		"%d tags, one HEAD each; nothing solved), median of %d runs: **%s** (target < %s: %s); CPU time (user + system) %s. Load average before: %s.\n\n",
		r.Images, r.Tags, len(r.Validate), dur(r.Total()), dur(NoopTarget), met, dur(Median(r.CPU)), cell(r.Load))
	b.WriteString("| phase | median |\n|---|---:|\n")
	for _, ph := range []struct {
		name string
		ds   []time.Duration
	}{
		{"validate (spec.Load)", r.Validate},
		{"plan (build.Plan)", r.Plan},
		{"fingerprint (build.Prepare), stat cache warm", r.Fingerprint},
		{"base digests + tag HEADs (Run, nothing built)", r.Checks},
	} {
		fmt.Fprintf(b, "| %s | %s |\n", ph.name, dur(Median(ph.ds)))
	}
	fmt.Fprintf(b, "| fingerprint without the stat cache (first run, once) | %s |\n\n", dur(r.ColdFingerprint))
	b.WriteString("The build records are seeded as a build pushing every image leaves them (build.Prepared.Record, the real " +
		"fingerprints), with the digests of small placeholder images really pushed under every tag: the synthetic images " +
		"need packages this host cannot fetch, and the no-op compares digests, not content. The external bases are busybox " +
		"copies under the bases' names in the loopback registry.\n\n")
}
