package llb

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
)

// digestFS is Flatten in a test.
func digestFS(t *testing.T, img v1.Image) map[string]FileInfo {
	t.Helper()
	fs, err := Flatten(img)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// diffFS lists the differences between bake's and ov's filesystems.
func diffFS(bake, ov map[string]FileInfo) []string {
	var out []string
	for _, p := range DiffFiles(bake, ov) {
		out = append(out, fmt.Sprintf("%s: bake %s, ov %s", p, whatIs(bake, p), whatIs(ov, p)))
	}
	return out
}

// copyDir copies a project tree (regular files and directories).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(to, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEquivalentToBake builds every image of the e2e family with `docker
// buildx bake` from the generated files and with ov build (detached layers,
// the default), on the same buildkitd, and compares root filesystems and
// configs.
func TestEquivalentToBake(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	dir := t.TempDir()
	copyDir(t, filepath.Join(env.RepoRoot, "e2e", "testdata", "family"), dir)
	p, plans := planProject(t, ctx, env, dir)
	out := filepath.Join(dir, ".out") // bake may write only below its directory
	bake := bakeAll(t, dir, p, plans, out)
	// Cold (the same apt/npm/cargo cache mounts serve both), then warm, then
	// after an edit to a layer nothing depends on (marker, the parent's
	// first layer: bake reruns every layer after it). The log has the times
	// and what the detached-layer checks took.
	// Each build starts from the decisions of the one before, as ov build
	// does from its build records.
	var log *statusLog
	decided := map[string]Decided{}
	var all string // the cold build's notices
	for _, run := range []string{"cold", "warm", "edit"} {
		if run == "edit" {
			if err := os.WriteFile(filepath.Join(dir, "layers", "marker", "marker.txt"), []byte("edited\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		runBake(t, ctx, env, bake)
		bakeTime := time.Since(start)
		start = time.Now()
		log = &statusLog{}
		res, err := Build(ctx, env.Client(t), BuildOptions{Family: plans, Exporter: export.OCILayout(filepath.Join(out, "ov")), Status: log.channel(), Warn: log.warn, Decided: maps.Clone(decided)})
		if err != nil {
			t.Fatalf("ov build: %v", err)
		}
		ovTime := time.Since(start)
		if run == "cold" {
			all = strings.Join(log.warns(), "\n")
		}
		for _, r := range res {
			maps.Copy(decided, r.Decided)
		}
		n, checks := log.ran("] check detached layers")
		t.Logf("%s: bake %s, ov build %s (%.2f of bake); checks run %d for %s", run, bakeTime.Round(time.Millisecond), ovTime.Round(time.Millisecond),
			ovTime.Seconds()/bakeTime.Seconds(), n, checks.Round(time.Millisecond))
	}
	// The family's unordered layers writing the same paths are found, each
	// notice naming both layers and the path (rmfile, which deletes what
	// mkfile created, fails detached and names the layers it may need).
	if n := len(log.warns()); n != 0 {
		t.Errorf("the last build, starting from the decisions of the one before, repeated %d notices", n)
	}
	for _, want := range []string{
		`layer "git-user" builds attached: /home/user/.gitconfig is also written by layer "git-core"`,
		`layer "git-core" builds attached: /home/user/.gitconfig is also written by layer "git-user"`,
		`layer "bashrc-a" builds attached: /etc/bash.bashrc is also written by layer "bashrc-b"`,
		`layer "bashrc-b" builds attached: /etc/bash.bashrc is also written by layer "bashrc-a"`,
		`layer "rmfile" builds on every layer before it: step "root.yml" failed`,
		`layer "unlink" builds on every layer before it: step "root.yml" failed`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no notice %q in:\n%s", want, all)
		}
	}
	for layer, needs := range map[string]string{"rmfile": "mkfile", "unlink": "mklink"} {
		if !regexp.MustCompile(`"` + layer + `" .*one of [a-z, -]*\b` + needs + `\b`).MatchString(all) {
			t.Errorf("the %s notice does not name %s:\n%s", layer, needs, all)
		}
	}

	for _, pl := range plans {
		t.Run(pl.Name, func(t *testing.T) {
			bakeImgs := layoutImages(t, filepath.Join(out, "bake", pl.Name))
			ovImgs := layoutImages(t, filepath.Join(out, "ov", pl.Name))
			if got, want := slices.Sorted(maps.Keys(ovImgs)), slices.Sorted(maps.Keys(bakeImgs)); !slices.Equal(got, want) || len(want) != len(pl.Platforms) {
				t.Fatalf("platforms: ov %q, bake %q", got, want)
			}
			for platform, bi := range bakeImgs {
				oi := ovImgs[platform]
				bc, oc := configOf(t, bi).Config, configOf(t, oi).Config
				if !slices.Equal(bc.Env, oc.Env) {
					t.Errorf("%s Env:\nbake %q\nov   %q", platform, bc.Env, oc.Env)
				}
				if bc.User != oc.User || bc.WorkingDir != oc.WorkingDir {
					t.Errorf("%s User/WorkingDir: bake %q %q, ov %q %q", platform, bc.User, bc.WorkingDir, oc.User, oc.WorkingDir)
				}
				if !maps.Equal(bc.Labels, oc.Labels) {
					t.Errorf("%s Labels: bake %v, ov %v", platform, bc.Labels, oc.Labels)
				}
				if !maps.Equal(bc.ExposedPorts, oc.ExposedPorts) {
					t.Errorf("%s ExposedPorts: bake %v, ov %v", platform, bc.ExposedPorts, oc.ExposedPorts)
				}
				if !slices.Equal(bc.Cmd, oc.Cmd) || !slices.Equal(bc.Entrypoint, oc.Entrypoint) {
					t.Errorf("%s Cmd/Entrypoint: bake %q %q, ov %q %q", platform, bc.Cmd, bc.Entrypoint, oc.Cmd, oc.Entrypoint)
				}
				diffs := diffFS(digestFS(t, bi), digestFS(t, oi))
				if len(diffs) > 0 {
					t.Errorf("%s: %d filesystem differences:\n%s", platform, len(diffs), strings.Join(diffs[:min(len(diffs), 60)], "\n"))
				}
			}
		})
	}
}
