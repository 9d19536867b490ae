package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/overthink/ov/internal/testenv"
)

// TestMergeRun merges the baked Debian parent in dockerd with `ov merge`
// and runs what its layers installed.
func TestMergeRun(t *testing.T) {
	f := bakeFamily(t)
	env := testenv.Get(t)
	ctx, host := startDocker(t, env, 20*time.Minute)
	ref := "ov.test/deb-parent:merge"
	dockerLoad(t, ctx, host, filepath.Join(f.out, "bake", "deb-parent"), ref)
	layersBefore, historyBefore := layerCount(t, ctx, host, ref)

	out, err := runOVEnv(env, []string{"DOCKER_HOST=" + host}, f.dir, "merge", "deb-parent", "--tag", "merge", "--engine", "docker")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ov merge deb-parent:\n%s", out)
	if !strings.Contains(out, "[merge 1]") {
		t.Fatalf("ov merge merged nothing:\n%s", out)
	}
	layersAfter, historyAfter := layerCount(t, ctx, host, ref)
	if layersAfter >= layersBefore || historyAfter >= historyBefore {
		t.Errorf("layers %d -> %d, history rows %d -> %d: want fewer", layersBefore, layersAfter, historyBefore, historyAfter)
	}
	if h := docker(t, ctx, host, "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref); !strings.Contains(h, "ov merge: ") {
		t.Errorf("docker history names no merged layer:\n%s", h)
	}
	runsIn(t, ctx, host, ref, map[string]string{
		"hello-node":              "hello from node v",
		"hello-rust":              "hello from rust",
		"id -u; pwd":              "1000\n/home/user",
		`echo "$OV_E2E_GREETING"`: `hello "quoted" /home/user`,
		"task --version >/dev/null; echo task ok":     "task ok",
		"stat -c '%U %a' /opt/marker/root-marker.txt": "root 640",
	})
}

// TestMergeAllTwice runs `ov merge --all` twice on the family with
// merge.auto in defaults: the first run merges, the second keeps every
// layer, changes no image and saves none.
func TestMergeAllTwice(t *testing.T) {
	f := bakeFamily(t)
	env := testenv.Get(t)
	ctx, host := startDocker(t, env, 20*time.Minute)
	dir := t.TempDir()
	if err := copyDir(filepath.Join(env.RepoRoot, "e2e", "testdata", "family"), dir); err != nil {
		t.Fatal(err)
	}
	yml := filepath.Join(dir, "images.yml")
	b, err := os.ReadFile(yml)
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(b), "\ndefaults:\n", "\ndefaults:\n  merge:\n    auto: true\n    max_mb: 64\n", 1)
	if patched == string(b) {
		t.Fatal("images.yml has no defaults block to add merge to")
	}
	if err := os.WriteFile(yml, []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	images := []string{"deb-parent", "deb-child", "runner", "bb-multi", "user-base", "bootc-link"}
	for _, img := range images {
		dockerLoad(t, ctx, host, filepath.Join(f.out, "bake", img), "ov.test/"+img+":all")
	}
	ids := func() map[string]string {
		out := map[string]string{}
		for _, img := range images {
			out[img] = strings.TrimSpace(docker(t, ctx, host, "image", "inspect", "-f", "{{.Id}}", "ov.test/"+img+":all"))
		}
		return out
	}
	mergeAll := func() string {
		t.Helper()
		start := time.Now()
		out, err := runOVEnv(env, []string{"DOCKER_HOST=" + host}, dir, "merge", "--all", "--tag", "all", "--engine", "docker")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ov merge --all took %s", time.Since(start).Round(time.Millisecond))
		return out
	}

	unmerged := ids()
	first := mergeAll()
	t.Logf("first ov merge --all:\n%s", first)
	// Parents first; every merge.auto image.
	last := -1
	for _, img := range []string{"deb-parent", "deb-child"} {
		i := strings.Index(first, "ov.test/"+img+":all (max 64 MB):")
		if i < 0 || i < last {
			t.Errorf("%s not merged after its parent:\n%s", img, first)
		}
		last = i
	}
	for _, img := range images {
		if !strings.Contains(first, "ov.test/"+img+":all (max 64 MB):") {
			t.Errorf("%s was not merged", img)
		}
	}
	if !strings.Contains(first, "[merge 1]") {
		t.Fatalf("the first run merged nothing:\n%s", first)
	}
	merged := ids()
	if merged["deb-parent"] == unmerged["deb-parent"] {
		t.Errorf("deb-parent: the first run did not change the image")
	}

	second := mergeAll()
	t.Logf("second ov merge --all:\n%s", second)
	if strings.Contains(second, "[merge") {
		t.Errorf("the second run merges again:\n%s", second)
	}
	if n := strings.Count(second, " 0 merged into 0\n"); n != len(images) {
		t.Errorf("%d of %d images report nothing merged:\n%s", n, len(images), second)
	}
	// Each image is a merged layer, or a layer between merged ones, so
	// docker's history settles it: no image is saved (engine.Save).
	if n := strings.Count(second, "(not saved: "); n != len(images) {
		t.Errorf("%d of %d images were not saved again:\n%s", n, len(images), second)
	}
	for _, line := range strings.Split(second, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && isNumber(fields[0]) && !strings.Contains(line, " layers -> ") && !strings.Contains(line, "[keep]") {
			t.Errorf("layer line without [keep]: %q", line)
		}
	}
	for img, id := range ids() {
		if id != merged[img] {
			t.Errorf("%s: the second run changed the image %s -> %s", img, merged[img], id)
		}
	}

	// The merged images still run.
	for ref, want := range map[string]string{
		"ov.test/deb-child:all": "child tool",
		"ov.test/bb-multi:all":  "x86_64",
		"ov.test/user-base:all": "ubuntu",
	} {
		cmd := map[string]string{
			"ov.test/deb-child:all": "child-tool",
			"ov.test/bb-multi:all":  "cat /arch.txt",
			"ov.test/user-base:all": "cat /home/ubuntu/whoami.txt",
		}[ref]
		if out := docker(t, ctx, host, "run", "--rm", ref, "sh", "-c", cmd); !strings.Contains(out, want) {
			t.Errorf("docker run %s %q: %q, want %q", ref, cmd, out, want)
		}
	}
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// TestMergeBuildLoad builds the Debian parent with `ov build --merge
// --load`: the image docker gets is merged on the way (no save/load round
// trip), runs, and `ov merge` finds nothing left to merge in it (and,
// without --dry-run, finds so without saving it).
func TestMergeBuildLoad(t *testing.T) {
	env := testenv.Get(t)
	ctx, host := startDocker(t, env, 40*time.Minute)
	dir := t.TempDir()
	if err := copyDir(filepath.Join(env.RepoRoot, "e2e", "testdata", "family"), dir); err != nil {
		t.Fatal(err)
	}
	dockerEnv := []string{"DOCKER_HOST=" + host}
	out, err := runOVEnv(env, dockerEnv, dir, "build", "deb-parent", "--load", "--merge", "--engine", "docker", "--tag", "mb", "--progress", "quiet")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`built deb-parent \(linux/amd64\) -> docker load \(merged linux/amd64: (\d+) -> (\d+) layers\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ov build reports no merge:\n%s", out)
	}
	before, _ := strconv.Atoi(m[1])
	after, _ := strconv.Atoi(m[2])
	t.Logf("ov build --merge: %d -> %d layers", before, after)
	if after >= before {
		t.Errorf("merged %d layers into %d", before, after)
	}
	ref := "ov.test/deb-parent:mb"
	if layers, _ := layerCount(t, ctx, host, ref); layers != after {
		t.Errorf("docker has %d layers, ov build reported %d", layers, after)
	}
	if h := docker(t, ctx, host, "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref); !strings.Contains(h, "ov merge: ") {
		t.Errorf("docker history names no merged layer:\n%s", h)
	}
	runsIn(t, ctx, host, ref, map[string]string{
		"hello-node":              "hello from node v",
		"hello-rust":              "hello from rust",
		"id -u; pwd":              "1000\n/home/user",
		`echo "$OV_E2E_GREETING"`: `hello "quoted" /home/user`,
		"stat -c '%U %a' /opt/marker/root-marker.txt": "root 640",
	})
	// ov merge, reading the image back out of docker, agrees it is merged.
	plan, err := runOVEnv(env, dockerEnv, dir, "merge", "deb-parent", "--tag", "mb", "--engine", "docker", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plan, "[merge") || !strings.Contains(plan, " 0 merged into 0\n") {
		t.Errorf("ov merge would merge the ov build --merge result again:\n%s", plan)
	}
	// Without --dry-run, it need not even save the image to know.
	again, err := runOVEnv(env, dockerEnv, dir, "merge", "deb-parent", "--tag", "mb", "--engine", "docker")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(again, " 0 merged into 0\n") || !strings.Contains(again, "(not saved: ") {
		t.Errorf("ov merge saved the ov build --merge result, or merged it:\n%s", again)
	}
}
