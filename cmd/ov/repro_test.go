package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/moby/buildkit/client"

	"github.com/overthink/ov/internal/testenv"
)

// reproProject is the smallest project that shows what differs run to
// run: busybox for two platforms with two detached layers writing files
// (mtimes), and Debian with one apt package (dpkg and apt logs, ldconfig's
// aux-cache). It is a git checkout with its inputs committed at commit.
func reproProject(t *testing.T, commit int64) string {
	t.Helper()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"images.yml": `defaults:
  registry: ov.test
images:
  bb:
    base: "busybox:latest"
    pkg: rpm
    platforms: [linux/amd64, linux/arm64]
    layers: [stamp, other]
  deb:
    base: "debian:bookworm"
    pkg: deb
    platforms: [linux/amd64]
    layers: [hello]
`,
		"layers/stamp/root.yml":  "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo stamp > /stamp.txt\n",
		"layers/other/root.yml":  "version: '3'\ntasks:\n  install:\n    cmds:\n      - mkdir -p /opt/other && echo other > /opt/other/file\n",
		"layers/hello/layer.yml": "deb:\n  packages: [hello]\n",
	})
	gitCommit(t, dir, commit)
	return dir
}

// gitCommit makes dir a git checkout with everything in it committed at
// commit (Unix seconds), and returns the commit's hash.
func gitCommit(t *testing.T, dir string, commit int64) string {
	t.Helper()
	when := "@" + strconv.FormatInt(commit, 10) + " +0000"
	var out []byte
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "-m", "repro"}, {"rev-parse", "HEAD"}} {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
			"GIT_AUTHOR_DATE="+when, "GIT_COMMITTER_DATE="+when, "GIT_CONFIG_GLOBAL=/dev/null")
		var err error
		if out, err = cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return strings.TrimSpace(string(out))
}

// manifests maps "image platform" to the digest of its manifest in the
// OCI layouts under dir.
func manifests(t *testing.T, dir string, images ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range images {
		idx, err := layout.ImageIndexFromPath(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			img, err := testenv.FindImage(idx, p)
			if err != nil {
				continue
			}
			d, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			out[name+" "+p] = d.String()
		}
	}
	return out
}

// Two cold builds (BuildKit's cache pruned before each) of the same commit
// give the same manifest per image and platform, detached and as one chain
// (--no-detach); another epoch gives others. The detached builds take the
// epoch from the commit (out of the steps), the chained ones from
// --source-date-epoch and SOURCE_DATE_EPOCH (in the steps' environment).
func TestReproducibleBuilds(t *testing.T) {
	testenv.SkipShort(t, "five builds, four of them cold")
	envFlags := buildEnv(t)
	env := testenv.Get(t)
	const commit = 1700000000
	dir := reproProject(t, commit)
	ctx := context.Background()
	bc, err := env.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()

	outs := map[string]string{} // build name -> its OCI layouts
	args := map[string][]string{"--no-detach, --source-date-epoch": {"--no-detach", "--source-date-epoch", "1700000100"}}
	build := func(name string, cold bool, args ...string) map[string]string {
		t.Helper()
		if cold {
			if err := bc.Prune(ctx, nil, client.PruneAll); err != nil {
				t.Fatalf("prune: %v", err)
			}
		}
		out := filepath.Join(t.TempDir(), "oci")
		outs[name] = out
		start := time.Now()
		args = append(append([]string{"-C", dir, "build", "--progress", "quiet", "--force", "--tag", "repro", "-o", "oci:" + out}, envFlags...), args...)
		if _, stderr, code := ov(t, args...); code != 0 {
			t.Fatalf("%s: exit %d:\n%s", name, code, stderr)
		}
		t.Logf("%s: %s", name, time.Since(start).Round(time.Second))
		got := manifests(t, out, "bb", "deb")
		if len(got) != 3 {
			t.Fatalf("%s: manifests %v", name, got)
		}
		if name == "detached 1" {
			deb, err := testenv.ReadOCI(filepath.Join(out, "deb"), "")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := deb.Files["/usr/bin/hello"]; !ok {
				t.Errorf("deb: hello is not installed")
			}
			for _, p := range []string{"/var/log/dpkg.log", "/var/log/apt/history.log", "/var/log/apt/term.log", "/var/cache/ldconfig/aux-cache"} {
				if _, ok := deb.Files[p]; ok {
					t.Errorf("deb: %s left by the apt step", p)
				}
			}
			if _, ok := deb.Files["/var/lib/dpkg/status"]; !ok {
				t.Errorf("deb: the dpkg database is gone")
			}
		}
		return got
	}
	same := func(what, first, second string) {
		t.Helper()
		a, b := build(first, true, args[what]...), build(second, true, args[what]...)
		for k, d := range a {
			if b[k] != d {
				image, platform, _ := strings.Cut(k, " ")
				t.Errorf("%s: %s: %s, then %s; differing files:\n%s", what, k, d, b[k],
					testenv.LayerDiff(filepath.Join(outs[first], image), filepath.Join(outs[second], image), platform))
			}
		}
	}

	t.Setenv("SOURCE_DATE_EPOCH", "")
	same("detached, epoch of the commit", "detached 1", "detached 2")
	same("--no-detach, --source-date-epoch", "no-detach 1", "no-detach 2")
	a := manifests(t, outs["no-detach 1"], "bb", "deb")
	t.Setenv("SOURCE_DATE_EPOCH", "1700000200")
	other := build("another epoch", false, "--no-detach")
	for k, d := range a {
		if other[k] == d {
			t.Errorf("another epoch: %s is still %s", k, d)
		}
	}
}
