package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/explain"
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// project writes a busybox parent and child, one layer each.
func project(t *testing.T) *spec.Project {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"images.yml": `defaults:
  registry: ov.test
  pkg: rpm
  platforms: [linux/amd64]
images:
  bb:
    base: "busybox:latest"
    layers: [a]
  bb-child:
    base: bb
    layers: [b]
`,
		"layers/a/root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo a > /a.txt\n",
		"layers/b/root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo b > /b.txt\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func planOptions(task plan.TaskSource) plan.Options {
	return plan.Options{CalVer: spec.CalVer(time.Date(2026, 2, 16, 9, 5, 0, 0, time.UTC)), Task: task, Users: baseuser.Offline}
}

// TestPlan: the targets are the named images (all without names), the
// family holds the parents they build on, and a target that builds for
// none of the requested platforms is a PlatformError. No builder needed.
func TestPlan(t *testing.T) {
	p := project(t)
	ctx := context.Background()
	family, targets, err := Plan(ctx, p, nil, planOptions(plan.TaskSource{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(family) != 2 || !slices.Equal(targets, []string{"bb", "bb-child"}) {
		t.Errorf("family %d images, targets %q", len(family), targets)
	}
	family, targets, err = Plan(ctx, p, []string{"bb-child"}, planOptions(plan.TaskSource{}), nil)
	if err != nil || len(family) != 2 || !slices.Equal(targets, []string{"bb-child"}) {
		t.Errorf("bb-child: family %d images, targets %q, err %v", len(family), targets, err)
	}
	_, _, err = Plan(ctx, p, nil, planOptions(plan.TaskSource{}), []ocispecs.Platform{{OS: "linux", Architecture: "s390x"}})
	var perr *PlatformError
	if !errors.As(err, &perr) {
		t.Errorf("s390x: err = %v, want a PlatformError", err)
	}
}

// TestRun builds a family through the library entry on a real buildkitd:
// the images are exported, each built image is recorded, and a second
// Prepare explains a rebuild of exactly the image whose layer was edited.
func TestRun(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	p := project(t)
	opt := planOptions(plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256})
	family, targets, err := Plan(ctx, p, nil, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Project: p, Family: family, Targets: targets, Builder: env.BuildkitAddr, Offline: true}
	out := t.TempDir()
	rep, err := Run(ctx, env.Client(t), req, llb.BuildOptions{Exporter: export.OCILayout(out)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || len(rep.RecordErrs) != 0 {
		t.Fatalf("report = %+v", rep)
	}
	for _, name := range targets {
		if _, err := os.Stat(filepath.Join(out, name, "index.json")); err != nil {
			t.Errorf("%s not exported: %v", name, err)
		}
		if explain.Read(p.Dir, name) == nil {
			t.Errorf("%s: no build record", name)
		}
	}

	rebuilds := func() map[string]bool {
		t.Helper()
		prep, err := Prepare(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, r := range prep.Explain() {
			out[r.Image] = r.Rebuild
		}
		return out
	}
	if got := rebuilds(); got["bb"] || got["bb-child"] {
		t.Errorf("unchanged: rebuilds %v", got)
	}
	if err := os.WriteFile(filepath.Join(p.Dir, "layers", "b", "root.yml"), []byte("version: '3'\ntasks:\n  install:\n    cmds:\n      - echo B > /b.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := rebuilds(); got["bb"] || !got["bb-child"] {
		t.Errorf("after editing layer b: rebuilds %v, want bb-child only", got)
	}
}
