package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/overthink/ov/bench"
	"github.com/overthink/ov/internal/builddir"
	"github.com/overthink/ov/internal/testenv"
)

// The benchmark family: issue 7's "e2e Debian parent, three children of
// it, and the multi-arch busybox image". Layers come from
// e2e/testdata/family (so the parent is the e2e one), plus "notes", the
// child layer the child edit changes.
const imagesYML = `# ovbench family (bench/cmd/ovbench), written for each run.
defaults:
  registry: %s/bench
  platforms:
    - linux/amd64
  pkg: deb

images:
  deb-parent:
    base: "debian:bookworm"
    layers:
      - marker
      - hello-node
      - hello-rust
      - web

  deb-child:
    base: deb-parent
    layers:
      - child-tool

  deb-child-user:
    base: deb-parent
    layers:
      - whoami

  deb-child-notes:
    base: deb-parent
    layers:
      - notes

  bb-multi:
    enabled: %t
    base: "busybox:latest"
    pkg: rpm
    platforms:
      - linux/amd64
      - linux/arm64
    layers:
      - arch
`

var notesLayer = map[string]string{
	"notes.txt": "bench notes\n",
	"root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n" +
		"      - mkdir -p /opt/notes\n      - cp notes.txt /opt/notes/notes.txt\n",
}

// Files the incremental edits rewrite: one in a parent layer nothing else
// depends on (marker is the parent's first layer, so a Containerfile redoes
// every later layer), one in a child's own layer.
const (
	parentEdit = "layers/marker/marker.txt"
	childEdit  = "layers/notes/notes.txt"
)

// debImages are the images the merge scenario loads into docker (an engine
// stores one platform per tag, and busybox is multi-platform).
var debImages = []string{"deb-parent", "deb-child", "deb-child-user", "deb-child-notes"}

type family struct {
	env    *testenv.Env
	bc     *client.Client
	dir    string // the project
	logs   string // every command's output, per scenario and contender
	oci    string // the OCI layouts of the OCI no-op
	log    string // the current log file
	bin    string // ov
	buildx string
	ovEnv  []string // for ov build and ov generate
	bxEnv  []string // for buildx
	images []string // enabled images
	notes  []string
	edits  int
}

func newFamily(ctx context.Context, env *testenv.Env, root, work, bin string) (*family, error) {
	f := &family{env: env, dir: filepath.Join(work, "family"), logs: filepath.Join(work, "logs"), oci: filepath.Join(work, "oci"), bin: bin}
	if err := copyTree(filepath.Join(root, "e2e", "testdata", "family"), f.dir); err != nil {
		return nil, err
	}
	for name, data := range notesLayer {
		if err := writeFile(filepath.Join(f.dir, "layers", "notes", name), data); err != nil {
			return nil, err
		}
	}
	f.ovEnv = append(env.OvEnv(), "BUILDKIT_HOST="+env.BuildkitAddr, "OV_ENGINE=docker")
	var err error
	if f.bxEnv, err = env.BuildxEnv(ctx); err != nil {
		return nil, err
	}
	if f.buildx, err = findBuildx(root); err != nil {
		return nil, err
	}
	if f.bc, err = env.NewClient(ctx); err != nil {
		return nil, err
	}

	// The busybox image is in the family when it builds; the fixture's
	// bootstrap needs tools busybox lacks (see llb's equivalence test).
	if err := f.writeImages(true); err != nil {
		return nil, err
	}
	logf("probing bb-multi")
	f.log = filepath.Join(f.logs, "probe-bb-multi.log")
	if _, err := f.ovBuild(ctx, []string{"bb-multi"}, []string{"--push"}); err != nil {
		f.notes = append(f.notes, "bb-multi (the multi-arch busybox image) is left out: ov build fails on it: "+firstLine(err))
		if err := f.writeImages(false); err != nil {
			return nil, err
		}
	}
	f.images = []string{"deb-parent", "deb-child", "deb-child-user", "deb-child-notes"}
	if len(f.notes) == 0 {
		f.images = append(f.images, "bb-multi")
	}
	return f, nil
}

func (f *family) close() { f.bc.Close() }

func (f *family) writeImages(busybox bool) error {
	return writeFile(filepath.Join(f.dir, "images.yml"), fmt.Sprintf(imagesYML, f.env.Registry, busybox))
}

// contender is one side of a scenario: it does its work and returns how
// long that took.
type contender func(ctx context.Context) (time.Duration, error)

// ov: `ov build --push` of the whole family to the loopback registry,
// layers as built (bake does not merge). Pushing, not writing OCI
// layouts: a layout export copies every blob of every image on each run,
// which would swamp a no-op build on both sides.
func (f *family) ovPush(ctx context.Context) (time.Duration, error) {
	return f.ovBuild(ctx, nil, []string{"--push", "--no-merge"})
}

// ovPushForce is ovPush that builds whatever the registry holds: for a
// cold build and to warm the cache. Without --force ov finds the family it
// pushed before still in the registry, with unchanged inputs, and builds
// nothing (a pruned cache changes neither).
func (f *family) ovPushForce(ctx context.Context) (time.Duration, error) {
	return f.ovBuild(ctx, nil, []string{"--push", "--no-merge", "--force"})
}

func (f *family) ovBuild(ctx context.Context, images, args []string) (time.Duration, error) {
	// rawjson: the breakdown reads ov's own export phases from the log.
	argv := append([]string{"build", "--progress", "rawjson", "--tag", "bench"}, args...)
	t, err := bench.RunLog(ctx, f.log, f.dir, f.ovEnv, f.bin, append(argv, images...)...)
	return t.Wall, err
}

// bake: `ov generate` then `buildx bake --push` of the same images.
func (f *family) bakePush(ctx context.Context) (time.Duration, error) {
	return f.bake(ctx, f.images, []string{"--push"})
}

func (f *family) bake(ctx context.Context, targets, args []string) (time.Duration, error) {
	gen, err := bench.RunLog(ctx, f.log, f.dir, f.ovEnv, f.bin, "generate", "--tag", "bench")
	if err != nil {
		return 0, err
	}
	argv := append([]string{"bake", "--progress", "plain", "-f", ".build/docker-bake.hcl"}, args...)
	b, err := bench.RunLog(ctx, f.log, f.dir, f.bxEnv, f.buildx, append(argv, targets...)...)
	return gen.Wall + b.Wall, err
}

// Merge: build, merge layers, load into docker. ov: `ov build --load
// --merge` (merged on the way out); bake: generate, `bake --load`, then
// `ov merge` of each image (docker save, merge, docker load).
// ovMerge builds with --force: the engine holding what the last run
// loaded makes ov's next --load --merge a no-op.
func (f *family) ovMerge(ctx context.Context) (time.Duration, error) {
	return f.ovBuild(ctx, debImages, []string{"--load", "--merge", "--force"})
}

// OCI layouts: `ov build --output oci:DIR` against bake writing each
// target as an OCI layout directory. Every bake run exports every blob
// again; ov finds the layouts holding what it built and writes nothing.
func (f *family) ovOCI(ctx context.Context) (time.Duration, error) {
	return f.ovBuild(ctx, nil, []string{"--output", "oci:" + filepath.Join(f.oci, "ov"), "--no-merge"})
}

func (f *family) bakeOCI(ctx context.Context) (time.Duration, error) {
	// Bake asks before writing outside the project, for the path as it
	// exists.
	if err := os.MkdirAll(filepath.Join(f.oci, "bake"), 0o755); err != nil {
		return 0, err
	}
	args := []string{"--allow", "fs.write=" + f.oci}
	for _, img := range f.images {
		args = append(args, "--set", img+".output=type=oci,tar=false,dest="+filepath.Join(f.oci, "bake", img))
	}
	return f.bake(ctx, f.images, args)
}

func (f *family) bakeMerge(ctx context.Context) (time.Duration, error) {
	d, err := f.bake(ctx, debImages, []string{"--load"})
	if err != nil {
		return d, err
	}
	m, err := f.merge(ctx)
	logf("  generate + bake --load %s, ov merge %s", d.Round(time.Millisecond), m.Round(time.Millisecond))
	return d + m, err
}

func (f *family) merge(ctx context.Context) (time.Duration, error) {
	var total time.Duration
	for _, img := range debImages {
		t, err := bench.RunLog(ctx, f.log, f.dir, f.ovEnv, f.bin, "merge", "--tag", "bench", img)
		total += t.Wall
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// prune empties buildkitd's cache (build results, cache mounts, pulled
// bases) and ov's export store, so neither contender finds a layer made.
func (f *family) prune(ctx context.Context) error {
	if err := f.bc.Prune(ctx, nil, client.PruneAll); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(f.dir, filepath.FromSlash(builddir.ExportStore))); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}

// edit changes file (relative to the project) to content no run had
// before.
func (f *family) edit(file string) error {
	f.edits++
	return writeFile(filepath.Join(f.dir, file), fmt.Sprintf("bench edit %d at %s\n", f.edits, time.Now().Format(time.RFC3339Nano)))
}

// measure runs the scenarios. Contenders alternate which goes first; each
// scenario's row is kept even when a later one fails.
func (f *family) measure(ctx context.Context, rep *bench.Report, want map[string]bool, runs int) error {
	both := func(row *bench.Row, i int, before func() error, ov, bake contender) error {
		if i == 0 {
			row.LoadStart = bench.LoadAvg()
			logf("%s: load average %s", row.Scenario, row.LoadStart)
		}
		order := []struct {
			name   string
			c      contender
			into   *[]time.Duration
			phases *[]bench.Breakdown
		}{{"ov", ov, &row.Ov, &row.OvPhases}, {"bake", bake, &row.Bake, &row.BakePhases}}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, o := range order {
			if before != nil {
				if err := before(); err != nil {
					return err
				}
			}
			f.log = filepath.Join(f.logs, fmt.Sprintf("%s-%d-%s.log", slug(row.Scenario), i+1, o.name))
			start := time.Now()
			d, err := o.c(ctx)
			if err != nil {
				return fmt.Errorf("%s, run %d, %s: %w", row.Scenario, i+1, o.name, err)
			}
			logf("%s run %d: %s %s", row.Scenario, i+1, o.name, d.Round(time.Millisecond))
			*o.into = append(*o.into, d)
			if row.Scenario == "cold" {
				log := ""
				if o.name == "ov" {
					log = f.log
				}
				if *o.phases, err = breakdown(ctx, f.bc, start, time.Now(), log); err != nil {
					return fmt.Errorf("%s, run %d, %s: build history: %w", row.Scenario, i+1, o.name, err)
				}
			}
		}
		return nil
	}
	add := func(row bench.Row, err error) error {
		row.LoadEnd = bench.LoadAvg()
		if err != nil {
			row.Err = firstLine(err)
		}
		rep.Rows = append(rep.Rows, row)
		return err
	}
	members := strings.Join(f.images, ", ")

	if want["cold"] {
		row := bench.Row{Scenario: "cold", Target: 0.9,
			What: "build cache pruned (buildkit Prune, all) before each build; the family (" + members + ") pushed to the loopback registry"}
		var err error
		for i := 0; i < runs && err == nil; i++ {
			err = both(&row, i, func() error { return f.prune(ctx) }, f.ovPushForce, f.bakePush)
		}
		if err := add(row, err); err != nil {
			return err
		}
	}
	if !(want["noop"] || want["incremental"] || want["merge"]) {
		return nil
	}
	// warm runs ov and then bake once, untimed.
	warm := func(name string, ov, bake contender) error {
		logf("warming %s", name)
		for i, c := range []contender{ov, bake} {
			f.log = filepath.Join(f.logs, fmt.Sprintf("warm-up-%s-%s.log", slug(name), []string{"ov", "bake"}[i]))
			if _, err := c(ctx); err != nil {
				return fmt.Errorf("warming %s: %w", name, err)
			}
		}
		return nil
	}
	// repeat times both contenders runs times (fewer when one fails).
	repeat := func(row bench.Row, ov, bake contender) error {
		var err error
		for i := 0; i < runs && err == nil; i++ {
			err = both(&row, i, nil, ov, bake)
		}
		return add(row, err)
	}
	// Warm both caches (a cold run leaves only the last contender's).
	if err := warm("both caches", f.ovPushForce, f.bakePush); err != nil {
		return err
	}
	if want["noop"] {
		row := bench.Row{Scenario: "no-op", Target: 0.2,
			What: "everything cached, nothing changed, pushed: ov finds every image up to date (its inputs as recorded, a HEAD per tag) and solves nothing; bake has no no-op and solves and pushes again"}
		if err := repeat(row, f.ovPush, f.bakePush); err != nil {
			return err
		}
	}
	if want["incremental"] {
		for _, sc := range []struct {
			name, file, what string
			target           float64
		}{
			{"incremental: parent layer", parentEdit, "one file changed in the parent's first layer (marker), which no other layer depends on", 0.3},
			{"incremental: child layer", childEdit, "one file changed in a child's own layer (deb-child-notes: notes)", 0},
		} {
			row := bench.Row{Scenario: sc.name, Target: sc.target, What: sc.what}
			var err error
			for i := 0; i < runs && err == nil; i++ {
				// One edit per run: each contender then rebuilds the
				// same change relative to its own last build.
				if err = f.edit(sc.file); err == nil {
					err = both(&row, i, nil, f.ovPush, f.bakePush)
				}
			}
			if err := add(row, err); err != nil {
				return err
			}
		}
	}
	if want["noop"] {
		// After the pushes: a build record keeps one set of outputs, so
		// ov's first OCI build exports (from the cache) and the next are
		// the no-op.
		if err := warm("the OCI layouts", f.ovOCI, f.bakeOCI); err != nil {
			return err
		}
		row := bench.Row{Scenario: "no-op: OCI layouts", Target: 0.2,
			What: "everything cached, nothing changed, written as OCI layout directories: ov checks each layout's index and writes nothing; bake solves and exports every blob again"}
		if err := repeat(row, f.ovOCI, f.bakeOCI); err != nil {
			return err
		}
	}
	if want["merge"] {
		row := bench.Row{Scenario: "build + merge + load", Target: 0.33,
			What: "the Debian images (" + strings.Join(debImages, ", ") + "), cache warm: ov build --load --merge, vs ov generate + bake --load + ov merge of each image"}
		host, err := f.env.StartDocker(ctx)
		if err == nil {
			f.ovEnv = append(f.ovEnv, "DOCKER_HOST="+host)
			f.bxEnv = append(f.bxEnv, "DOCKER_HOST="+host)
			for i := 0; i < runs && err == nil; i++ {
				err = both(&row, i, nil, f.ovMerge, f.bakeMerge)
			}
		}
		if err := add(row, err); err != nil {
			return err
		}
	}
	return nil
}

func findBuildx(root string) (string, error) {
	if p := filepath.Join(root, "bin", "buildx"); fileExists(p) {
		return p, nil
	}
	p, err := exec.LookPath("buildx")
	if err != nil {
		return "", fmt.Errorf("buildx not found in %s/bin or PATH: run `go tool task setup`", root)
	}
	return p, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writeFile(p, data string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(data), 0o644)
}

// copyTree copies regular files and directories (modes kept) from src to
// dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		default:
			return fmt.Errorf("copy %s: not a regular file or directory", p)
		}
	})
}

// firstLine keeps the start of a long error (command output follows it)
// and the last line, where tools usually say what failed.
func firstLine(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	if len(lines) == 1 {
		return lines[0]
	}
	last := ""
	for i := len(lines) - 1; i > 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			last = l
			break
		}
	}
	return lines[0] + " … " + last
}

// slug makes a scenario name a file name.
func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}
