package build

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/engine"
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
	return projectOf(t, `defaults:
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
`)
}

// projectOf writes images.yml and layers a and b.
func projectOf(t *testing.T, imagesYml string) *spec.Project {
	return projectFiles(t, map[string]string{
		"images.yml":        imagesYml,
		"layers/a/root.yml": rootYml("echo a > /a.txt"),
		"layers/b/root.yml": rootYml("echo b > /b.txt"),
	})
}

// rootYml is a root.yml running cmd.
func rootYml(cmd string) string {
	return "version: '3'\ntasks:\n  install:\n    cmds:\n      - " + cmd + "\n"
}

// projectFiles writes files (project-relative paths) and loads the project.
func projectFiles(t *testing.T, files map[string]string) *spec.Project {
	t.Helper()
	dir := t.TempDir()
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
// the images are exported and recorded; a second build with nothing
// changed solves nothing; a new tag, a deleted layout, an edited layer,
// other outputs and Force each do what they must; and Prepare explains a
// rebuild of exactly the image whose layer was edited.
func TestRun(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	c := env.Client(t)
	p := project(t)
	task := plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256}
	family, targets, err := Plan(ctx, p, nil, planOptions(task), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	layout := export.OCILayout(out)
	// The base's digest is looked up where the builder pulls it from.
	t.Setenv("OV_REGISTRY_MIRRORS", "docker.io="+env.Registry)
	req := Request{Project: p, Family: family, Targets: targets, Builder: env.BuildkitAddr,
		Dests: []export.Dest{layout}, Outputs: outputsOf(targets, "oci:"+out)}
	check := func(what string, wantUpToDate, wantBuilt []string) {
		t.Helper()
		checkRun(t, c, req, layout, what, wantUpToDate, wantBuilt)
	}

	check("first build", nil, targets)
	for _, name := range targets {
		if explain.Read(p.Dir, name) == nil {
			t.Errorf("%s: no build record", name)
		}
	}
	check("nothing changed", targets, nil)

	// A later minute's CalVer tag: the layout is renamed, not rebuilt.
	family, _, err = Plan(ctx, p, nil, planOptions(task), nil)
	if err != nil {
		t.Fatal(err)
	}
	later, _, err := Plan(ctx, p, nil, plan.Options{CalVer: spec.CalVer(time.Date(2026, 2, 16, 9, 6, 0, 0, time.UTC)), Task: task, Users: baseuser.Offline}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Family = later
	check("new tag", targets, nil)
	if b, err := os.ReadFile(filepath.Join(out, "bb", "index.json")); err != nil || !strings.Contains(string(b), later[0].Tags[0]) || strings.Contains(string(b), family[0].Tags[0]) {
		t.Errorf("bb's layout does not name %s (only): %s %v", later[0].Tags[0], b, err)
	}

	if err := os.RemoveAll(filepath.Join(out, "bb-child")); err != nil {
		t.Fatal(err)
	}
	check("bb-child's layout deleted", []string{"bb"}, []string{"bb-child"})

	req.Outputs = outputsOf(targets, "other")
	check("other outputs", nil, targets)
	req.Force = true
	check("force", nil, targets)
	req.Force = false

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
	check("layer b edited", []string{"bb"}, []string{"bb-child"})

	// The base's digest unknown (offline): bb may have changed, and so
	// may bb-child on it.
	req.Offline = true
	check("base digest unknown", nil, targets)
}

// outputsOf describes every target's outputs as desc.
func outputsOf(targets []string, desc string) map[string]string {
	out := map[string]string{}
	for _, t := range targets {
		out[t] = desc
	}
	return out
}

// run builds req, exporting with exp, and counts the progress updates,
// each from a solve.
func run(t *testing.T, c *client.Client, req Request, exp export.Exporter) (upToDate, built []string, statuses int) {
	t.Helper()
	ch := make(chan *client.SolveStatus)
	done := make(chan struct{})
	go func() {
		for range ch {
			statuses++
		}
		close(done)
	}()
	rep, err := Run(context.Background(), c, req, llb.BuildOptions{Exporter: exp, Status: ch})
	<-done
	if err != nil || len(rep.RecordErrs) != 0 {
		t.Fatalf("build: %v %v", err, rep.RecordErrs)
	}
	for _, r := range rep.Results {
		built = append(built, r.Image)
	}
	return rep.UpToDate, built, statuses
}

// checkRun runs req and checks which targets were up to date and which
// built; with nothing to build, buildkitd must have solved nothing (no
// progress update, no new record in its build history), and a build must
// show in both.
func checkRun(t *testing.T, c *client.Client, req Request, exp export.Exporter, what string, wantUpToDate, wantBuilt []string) {
	t.Helper()
	start := time.Now()
	upToDate, built, statuses := run(t, c, req, exp)
	if !slices.Equal(upToDate, wantUpToDate) || !slices.Equal(built, wantBuilt) {
		t.Errorf("%s: up to date %q, built %q; want %q, %q", what, upToDate, built, wantUpToDate, wantBuilt)
	}
	solves := testenv.SolvesSince(t, c, start)
	if len(built) == 0 && (statuses != 0 || solves != 0) {
		t.Errorf("%s: nothing to build, yet %d progress updates and %d solves in buildkitd's history", what, statuses, solves)
	}
	if len(built) != 0 && (statuses == 0 || solves == 0) {
		t.Errorf("%s: built %q with %d progress updates and %d solves in buildkitd's history", what, built, statuses, solves)
	}
}

// TestRunLoad: with --load, a build with nothing changed asks the engine
// (a real dockerd) for each tag's image ID and solves nothing; a tag
// removed is given back, an image removed is loaded again.
func TestRunLoad(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	eng, rmi := startDocker(t, env)
	c := env.Client(t)
	t.Setenv("OV_REGISTRY_MIRRORS", "docker.io="+env.Registry)
	p := project(t)
	task := plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256}
	family, targets, err := Plan(ctx, p, nil, planOptions(task), nil)
	if err != nil {
		t.Fatal(err)
	}
	load := export.Load(eng)
	req := Request{Project: p, Family: family, Targets: targets, Builder: env.BuildkitAddr,
		Platforms: []ocispecs.Platform{{OS: "linux", Architecture: "amd64"}}, Dests: []export.Dest{load}, Outputs: outputsOf(targets, "docker load")}
	check := func(what string, wantUpToDate, wantBuilt []string) {
		t.Helper()
		checkRun(t, c, req, load, what, wantUpToDate, wantBuilt)
	}

	check("first build", nil, targets)
	rec := explain.Read(p.Dir, "bb")
	if rec == nil || rec.ExportedConfig == "" {
		t.Fatalf("bb's record holds no config digest: %+v", rec)
	}
	if id, err := eng.ImageID(ctx, family[0].Tags[0]); err != nil || id != rec.ExportedConfig {
		t.Errorf("docker has bb as %q (%v), the record %q", id, err, rec.ExportedConfig)
	}
	check("nothing changed", targets, nil)

	rmi(family[0].Tags[0])
	check("bb's first tag removed", targets, nil)
	if _, err := eng.ImageID(ctx, family[0].Tags[0]); err != nil {
		t.Errorf("bb's tag %s not given back: %v", family[0].Tags[0], err)
	}

	rmi(family[1].Tags...)
	check("bb-child removed", []string{"bb"}, []string{"bb-child"})
}

// startDocker starts env's dockerd: the engine that uses it, and rmi
// removing refs from it.
func startDocker(t *testing.T, env *testenv.Env) (eng engine.Engine, rmi func(refs ...string)) {
	t.Helper()
	host, err := env.StartDocker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rmi = func(refs ...string) {
		t.Helper()
		if out, err := exec.Command("docker", append([]string{"-H", host, "rmi"}, refs...)...).CombinedOutput(); err != nil {
			t.Fatalf("docker rmi %q: %v\n%s", refs, err, out)
		}
	}
	return engine.Engine{Flags: []string{"-H", host}}, rmi
}

// TestRunPush: with --push, a build with nothing changed checks each tag
// with a HEAD (a new tag is pointed at what the registry has); the
// registry losing the image, or the base tag moving, builds again.
func TestRunPush(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	c := env.Client(t)
	t.Setenv("OV_REGISTRY_MIRRORS", "docker.io="+env.Registry)
	base := env.Registry + "/ovtest/noop-base:1"
	if err := crane.Copy(env.Registry+"/library/busybox:latest", base, crane.Insecure); err != nil {
		t.Fatal(err)
	}
	p := projectOf(t, `defaults:
  registry: `+env.Registry+`/noop
  pkg: rpm
  platforms: [linux/amd64]
images:
  pushed:
    base: "ovtest/noop-base:1"
    layers: [a]
`)
	task := plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256}
	plans := func(minute int) []*plan.Image {
		family, _, err := Plan(ctx, p, nil, plan.Options{CalVer: spec.CalVer(time.Date(2026, 2, 16, 9, minute, 0, 0, time.UTC)), Task: task, Users: baseuser.Offline}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return family
	}
	push := export.Push()
	req := Request{Project: p, Family: plans(5), Targets: []string{"pushed"}, Builder: env.BuildkitAddr, Dests: []export.Dest{push}, Outputs: outputsOf([]string{"pushed"}, "push")}
	check := func(what string, upToDate bool) {
		t.Helper()
		if upToDate {
			checkRun(t, c, req, push, what, []string{"pushed"}, nil)
		} else {
			checkRun(t, c, req, push, what, nil, []string{"pushed"})
		}
	}
	check("first build", false)
	check("nothing changed", true)

	req.Family = plans(6)
	check("new tag", true)
	exported := explain.Read(p.Dir, "pushed").Exported
	for _, tag := range req.Family[0].Tags {
		if d, err := crane.Digest(tag, crane.Insecure); err != nil || d != exported {
			t.Errorf("%s: digest %s, %v; want %s", tag, d, err, exported)
		}
	}

	// One tag deleted: pointed at the image again, nothing built.
	if err := crane.Delete(req.Family[0].Tags[0], crane.Insecure); err != nil {
		t.Fatal(err)
	}
	check("a tag deleted", true)
	if d, err := crane.Digest(req.Family[0].Tags[0], crane.Insecure); err != nil || d != exported {
		t.Errorf("%s after the no-op: digest %s, %v; want %s", req.Family[0].Tags[0], d, err, exported)
	}

	for _, ref := range append(slices.Clone(req.Family[0].Tags), env.Registry+"/noop/pushed@"+exported) {
		if err := crane.Delete(ref, crane.Insecure); err != nil {
			t.Fatal(err)
		}
	}
	check("image deleted from the registry", false)

	// The base tag moves: busybox with one more file.
	bb, err := crane.Pull(env.Registry+"/library/busybox:latest", crane.Insecure, crane.WithPlatform(&v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	extra, err := crane.Layer(map[string][]byte{"moved": []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	moved, err := mutate.AppendLayers(bb, extra)
	if err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(moved, base, crane.Insecure); err != nil {
		t.Fatal(err)
	}
	check("base moved", false)
	check("nothing changed after the move", true)
}

// TestRunPushLoad: --push and --load in one build (one solve, both
// exports; a real registry and dockerd). A build with nothing changed
// solves nothing; a docker tag removed is given back without a solve;
// the image removed from docker is built and exported again (to both:
// one record holds one export), after which nothing is to do again.
func TestRunPushLoad(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	eng, rmi := startDocker(t, env)
	c := env.Client(t)
	t.Setenv("OV_REGISTRY_MIRRORS", "docker.io="+env.Registry)
	p := projectOf(t, `defaults:
  registry: `+env.Registry+`/pushload
  pkg: rpm
  platforms: [linux/amd64]
images:
  both:
    base: "busybox:latest"
    layers: [a]
`)
	task := plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256}
	family, targets, err := Plan(ctx, p, nil, planOptions(task), nil)
	if err != nil {
		t.Fatal(err)
	}
	push, load := export.Push(), export.Load(eng)
	req := Request{Project: p, Family: family, Targets: targets, Builder: env.BuildkitAddr,
		Platforms: []ocispecs.Platform{{OS: "linux", Architecture: "amd64"}},
		Dests:     []export.Dest{push, load}, Outputs: outputsOf(targets, "push; docker load")}
	check := func(what string, upToDate bool) {
		t.Helper()
		if upToDate {
			checkRun(t, c, req, export.Multi(push, load), what, targets, nil)
		} else {
			checkRun(t, c, req, export.Multi(push, load), what, nil, targets)
		}
		// Both destinations hold the recorded image, under every tag.
		rec := explain.Read(p.Dir, "both")
		for _, tag := range family[0].Tags {
			if d, err := crane.Digest(tag, crane.Insecure); err != nil || d != rec.Exported {
				t.Errorf("%s: registry has %s as %s (%v), the record %s", what, tag, d, err, rec.Exported)
			}
			if id, err := eng.ImageID(ctx, tag); err != nil || (id != rec.ExportedConfig && id != rec.Exported) {
				t.Errorf("%s: docker has %s as %q (%v), the record %s / %s", what, tag, id, err, rec.Exported, rec.ExportedConfig)
			}
		}
	}

	check("first build", false)
	check("nothing changed", true)
	rmi(family[0].Tags[0])
	check("a docker tag removed", true)
	rmi(family[0].Tags...)
	check("the image removed from docker", false)
	check("nothing changed after the reload", true)
}

// TestRunDecided: the detached-layer checks' decisions are recorded and
// the next build starts from them. rm deletes what mk made without
// depending on it (it fails detached and is built on every layer before
// it); s1 and s2 both append to /etc/shells (attached). After an edit the
// second build fails no step, repeats no notice and solves once; a forced
// build decides afresh.
func TestRunDecided(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	c := env.Client(t)
	p := projectFiles(t, map[string]string{
		"images.yml": `defaults:
  registry: ov.test
  pkg: rpm
  platforms: [linux/amd64]
images:
  bb:
    base: "busybox:latest"
    layers: [mk, rm, s1, s2]
`,
		"layers/mk/root.yml": rootYml("mkdir -p /opt && echo x > /opt/f"),
		"layers/rm/root.yml": rootYml("rm /opt/f"),
		"layers/s1/root.yml": rootYml("echo /bin/s1 >> /etc/shells"),
		"layers/s2/root.yml": rootYml("echo /bin/s2 >> /etc/shells"),
	})
	task := plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256}
	family, targets, err := Plan(ctx, p, nil, planOptions(task), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	req := Request{Project: p, Family: family, Targets: targets, Builder: env.BuildkitAddr, Outputs: outputsOf(targets, "oci:"+out)} // no Dests: always built
	build := func() (notices []string, failed []string) {
		t.Helper()
		prep, err := Prepare(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan *client.SolveStatus)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for st := range ch {
				for _, v := range st.Vertexes {
					if v.Error != "" {
						failed = append(failed, v.Name)
					}
				}
			}
		}()
		var mu sync.Mutex
		warn := func(s string) { mu.Lock(); notices = append(notices, s); mu.Unlock() }
		_, err = prep.Run(ctx, c, llb.BuildOptions{Exporter: export.OCILayout(out), Status: ch, Warn: warn})
		<-done
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		return notices, failed
	}

	notices, failed := build()
	if len(notices) != 3 || len(failed) == 0 {
		t.Errorf("first build: notices %q, failed steps %q; want rm's and s1's and s2's, and rm failing detached", notices, failed)
	}
	rec := explain.Read(p.Dir, "bb")
	if rec == nil || !slices.Equal(rec.SeeAll, []string{"rm"}) || !slices.Equal(rec.Attached, []string{"s1", "s2"}) {
		t.Fatalf("record: %+v", rec)
	}
	if err := os.WriteFile(filepath.Join(p.Dir, "layers", "s2", "root.yml"), []byte(rootYml("echo /bin/s2b >> /etc/shells")), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	notices, failed = build()
	if len(notices) != 0 || len(failed) != 0 {
		t.Errorf("second build: notices %q, failed steps %q; want none", notices, failed)
	}
	if n := testenv.SolvesSince(t, c, start); n != 1 {
		t.Errorf("second build: %d solves, want 1 (no second round)", n)
	}
	if rec := explain.Read(p.Dir, "bb"); rec == nil || !slices.Equal(rec.SeeAll, []string{"rm"}) || !slices.Equal(rec.Attached, []string{"s1", "s2"}) {
		t.Errorf("record after the second build: %+v", rec)
	}

	// Forced: decided afresh from the plain plan, as the first build was.
	req.Force = true
	notices, failed = build()
	if len(notices) != 3 || len(failed) == 0 {
		t.Errorf("forced build: notices %q, failed steps %q; want the first build's", notices, failed)
	}
	if rec := explain.Read(p.Dir, "bb"); rec == nil || !slices.Equal(rec.SeeAll, []string{"rm"}) || !slices.Equal(rec.Attached, []string{"s1", "s2"}) {
		t.Errorf("record after the forced build: %+v", rec)
	}
	req.Force = false

	// rm given the depends its notice asked for: decided afresh, rm no
	// longer builds on every layer before it.
	if err := os.WriteFile(filepath.Join(p.Dir, "layers", "rm", "layer.yml"), []byte("depends: [mk]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err = spec.Load(p.Dir); err != nil {
		t.Fatal(err)
	}
	if req.Family, req.Targets, err = Plan(ctx, p, nil, planOptions(task), nil); err != nil {
		t.Fatal(err)
	}
	req.Project = p
	notices, failed = build()
	if len(failed) != 0 || len(notices) != 2 {
		t.Errorf("third build: notices %q, failed steps %q; want s1's and s2's only", notices, failed)
	}
	if rec := explain.Read(p.Dir, "bb"); rec == nil || len(rec.SeeAll) != 0 || !slices.Equal(rec.Attached, []string{"s1", "s2"}) {
		t.Errorf("record after the third build: %+v", rec)
	}
}
