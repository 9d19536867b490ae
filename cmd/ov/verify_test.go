package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/overthink/ov/internal/testenv"
)

// ov verify rebuilds with no cache and finds what ov build wrote and
// pushed reproducible: the OCI layout (with its provenance attestation,
// not compared) and the registry's image, each platform's digest printed;
// the layer's step ran again although the build had just cached it; the
// layout is left as it was and the rebuild's is removed. The rebuild runs
// an hour later than the build: the CalVer version (tag auto) is the
// recorded one.
func TestVerify(t *testing.T) {
	testenv.SkipShort(t, "ov build and ov verify on buildkitd")
	envFlags := buildEnv(t)
	env := testenv.Get(t)
	dir := bbProject(t, env.Registry+"/verify", "stamp")
	gitCommit(t, dir, 1700000000)
	if _, stderr, code := ov(t, append([]string{"-C", dir, "build", "--progress", "quiet", "--push", "-o", "oci:" + filepath.Join(dir, ".build", "oci")}, envFlags...)...); code != 0 {
		t.Fatalf("ov build: exit %d:\n%s", code, stderr)
	}
	// The cache holds the layer's step: a build answers it from there.
	_, stderr, code := ov(t, append([]string{"-C", dir, "build", "--force", "--progress", "plain", "--push", "-o", "oci:" + filepath.Join(dir, ".build", "oci")}, envFlags...)...)
	if ran, ok := stamped(stepRuns(stderr)); code != 0 || !ok || ran {
		t.Fatalf("ov build --force: exit %d, the layer's step seen %v, ran %v:\n%s", code, ok, ran, stderr)
	}
	oci := filepath.Join(dir, ".build", "oci", "bb")
	before, err := os.ReadFile(filepath.Join(oci, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := layoutDigest(t, oci)

	later := func(args ...string) (string, string, int) {
		var out, errb strings.Builder
		code := run(append(append([]string{"-C", dir, "verify", "bb"}, envFlags...), args...), &out, &errb, now.Add(time.Hour))
		return out.String(), errb.String(), code
	}
	stdout, stderr, code := later("--progress", "plain")
	if code != 0 || stdout != "reproducible: bb linux/amd64 "+want+"\n" {
		t.Fatalf("ov verify bb: exit %d, stdout %q (want the layout's %s), stderr:\n%s", code, stdout, want, stderr)
	}
	if ran, ok := stamped(stepRuns(stderr)); !ok || !ran {
		t.Errorf("the rebuild's progress shows the layer's step %v, run %v: want it run:\n%s", ok, ran, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(oci, "index.json")); string(after) != string(before) {
		t.Errorf("the layout changed:\n%s\nthen\n%s", before, after)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".build", ".verify*")); len(left) > 0 {
		t.Errorf("the rebuild left %v", left)
	}

	stdout, stderr, code = later("--push", "--progress", "quiet")
	if code != 0 || stdout != "reproducible: bb linux/amd64 "+want+"\n" {
		t.Fatalf("ov verify bb --push: exit %d, stdout %q (want %s), stderr:\n%s", code, stdout, want, stderr)
	}
	ref, err := name.ParseReference(env.Registry + "/verify/bb:latest")
	if err != nil {
		t.Fatal(err)
	}
	if desc, err := remote.Get(ref); err != nil || !desc.MediaType.IsIndex() {
		t.Errorf("the pushed image %v (%v): want an index with the attestation", desc, err)
	}
}

// ov verify rebuilds on the base digest the build recorded: the base's tag
// moved since (a new config under it) and the image is still reproducible.
func TestVerifyPinsBase(t *testing.T) {
	testenv.SkipShort(t, "ov build and ov verify on buildkitd")
	envFlags := buildEnv(t)
	env := testenv.Get(t)
	src, err := name.ParseReference(env.Registry+"/library/busybox:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	base, err := name.ParseReference(env.Registry+"/pinned/base:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(base, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"images.yml":            "defaults:\n  registry: ov.test\nimages:\n  bb:\n    base: \"" + base.String() + "\"\n    pkg: rpm\n    platforms: [linux/amd64]\n    layers: [stamp]\n",
		"layers/stamp/root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo stamp > /stamp.txt\n",
	})
	gitCommit(t, dir, 1700000000)
	if _, stderr, code := ov(t, append([]string{"-C", dir, "build", "--progress", "quiet"}, envFlags...)...); code != 0 {
		t.Fatalf("ov build: exit %d:\n%s", code, stderr)
	}
	want := layoutDigest(t, filepath.Join(dir, ".build", "oci", "bb"))

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Env = append(cf.Config.Env, "MOVED=1")
	moved, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(base, moved); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := ov(t, append([]string{"-C", dir, "verify", "bb", "--progress", "quiet"}, envFlags...)...)
	if code != 0 || stdout != "reproducible: bb linux/amd64 "+want+"\n" {
		t.Fatalf("ov verify bb after the base moved: exit %d, stdout %q (want %s), stderr:\n%s", code, stdout, want, stderr)
	}
}

// A layer that writes a random value is not reproducible: ov verify
// exits 1 naming the platform, both digests, the layer (its history entry)
// and the file.
func TestVerifyNotReproducible(t *testing.T) {
	testenv.SkipShort(t, "ov build and ov verify on buildkitd")
	envFlags := buildEnv(t)
	dir := bbProject(t, "ov.test", "stamp")
	testenv.WriteFiles(t, dir, map[string]string{
		"layers/stamp/root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo stamp > /stamp.txt\n      - cat /proc/sys/kernel/random/uuid > /random.txt\n",
	})
	gitCommit(t, dir, 1700000000)
	if _, stderr, code := ov(t, append([]string{"-C", dir, "build", "--progress", "quiet"}, envFlags...)...); code != 0 {
		t.Fatalf("ov build: exit %d:\n%s", code, stderr)
	}
	want := layoutDigest(t, filepath.Join(dir, ".build", "oci", "bb"))
	stdout, stderr, code := ov(t, append([]string{"-C", dir, "verify", "bb", "--progress", "quiet"}, envFlags...)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, w := range []string{"not reproducible: bb linux/amd64: oci:", "has " + want + ", the rebuild sha256:", "(stamp: ", "1 path(s) differ", "  random.txt: "} {
		if !strings.Contains(stdout, w) {
			t.Errorf("no %q in:\n%s", w, stdout)
		}
	}
	if strings.Contains(stdout, "stamp.txt") {
		t.Errorf("an equal file is named:\n%s", stdout)
	}
	if !strings.Contains(stderr, "verify bb: 1 of 1 platform(s) rebuilt with no cache differ") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// ov verify names what it compares with, or why it cannot: no build yet,
// a build loaded into an engine, flags that name two images.
func TestVerifyNothingToCompare(t *testing.T) {
	dir := bbProject(t, "ov.test", "stamp")
	for _, tc := range []struct {
		args   []string
		record string
		want   string
	}{
		{nil, "", "no OCI layout .build/oci/bb to compare with"},
		{nil, "docker load; merge=0", "was last built with --load: an engine's image store keeps no manifest digest"},
		{[]string{"--push", "-o", "oci:x"}, "", "--push and --output name two images"},
		{[]string{"-o", "oci-archive:x.tar"}, "", "want oci:DIR"},
	} {
		os.RemoveAll(filepath.Join(dir, ".build"))
		if tc.record != "" {
			b, _ := json.Marshal(map[string]any{"version": 3, "image": "bb", "outputs": tc.record, "exported": "sha256:00"})
			testenv.WriteFiles(t, dir, map[string]string{".build/state/bb.json": string(b)})
		}
		t.Chdir(dir)
		_, stderr, code := ov(t, append([]string{"verify", "bb", "--offline-user"}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v (record %q): exit %d, stderr %q, want %q", tc.args, tc.record, code, stderr, tc.want)
		}
	}
}

// layoutDigest is the one platform manifest's digest in an ov build's
// OCI layout (its index holds the image and its attestation).
func layoutDigest(t *testing.T, dir string) string {
	t.Helper()
	ms, err := layoutManifests(dir)
	if err != nil || len(ms) != 1 {
		t.Fatalf("%s: %d manifests, %v", dir, len(ms), err)
	}
	return ms[0].Digest.String()
}

// stamped is whether the step of layer stamp ran (stepRuns), and whether
// the progress shows it at all.
func stamped(runs map[string]bool) (ran, ok bool) {
	for name, r := range runs {
		if strings.HasPrefix(name, "[bb stamp] ") {
			ran, ok = ran || r, true
		}
	}
	return ran, ok
}
