package main

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
)

// described is what an image in a registry says about itself.
type described struct {
	labels, annotations map[string]string
	created             time.Time
}

// bbProject is a project of one busybox image bb for linux/amd64 whose
// tags are under repo, with layers each writing /<layer>.txt.
func bbProject(t *testing.T, repo string, layers ...string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"images.yml": "defaults:\n  registry: " + repo + "\nimages:\n" +
		"  bb:\n    base: \"busybox:latest\"\n    pkg: rpm\n    platforms: [linux/amd64]\n    layers: [" + strings.Join(layers, ", ") + "]\n"}
	for _, l := range layers {
		files["layers/"+l+"/root.yml"] = "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo " + l + " > /" + l + ".txt\n"
	}
	testenv.WriteFiles(t, dir, files)
	return dir
}

func describedAt(t *testing.T, ref string) described {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return described{labels: cf.Config.Labels, annotations: m.Annotations, created: cf.Created.UTC()}
}

// ov build --push and the generated bake file (through a real buildx bake,
// with the epoch output it sets) push images that say the same about
// themselves: labels, manifest annotations (the OCI keys from the git
// checkout, its remote and the tag; ov's layers and parent) and the
// created time, which is the epoch of the commit.
func TestDescribeBothBackEnds(t *testing.T) {
	testenv.SkipShort(t, "an ov build and a buildx bake")
	envFlags := buildEnv(t)
	env := testenv.Get(t)
	dir := bbProject(t, env.Registry+"/describe", "stamp", "other")
	const commit = 1700000000
	rev := gitCommit(t, dir, commit)
	if out, err := exec.Command("git", "-C", dir, "remote", "add", "origin", "https://token@example.com/o/r.git").CombinedOutput(); err != nil {
		t.Fatalf("git remote add: %v\n%s", err, out)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "") // restored after the test
	os.Unsetenv("SOURCE_DATE_EPOCH")  // bake would take "" for the build's time

	if _, stderr, code := ov(t, append([]string{"-C", dir, "build", "--progress", "quiet", "--tag", "v1", "--push"}, envFlags...)...); code != 0 {
		t.Fatalf("ov build: exit %d:\n%s", code, stderr)
	}
	// The task flags of envFlags, after --builder ADDR.
	if _, stderr, code := ov(t, append([]string{"-C", dir, "generate", "--tag", "v1"}, envFlags[2:]...)...); code != 0 {
		t.Fatalf("ov generate: exit %d:\n%s", code, stderr)
	}
	bakeRef := env.Registry + "/describe/bake-bb:v1"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// push=true on the file's output (type=image with the epoch), as
	// `bake --push` does.
	if out, err := env.Bake(ctx, testenv.Bake{Dir: dir, Files: []string{".build/docker-bake.hcl"}, Targets: []string{"bb"},
		Set: []string{"bb.tags=" + bakeRef, "bb.push=true"}}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	ovImg, bakeImg := describedAt(t, env.Registry+"/describe/bb:v1"), describedAt(t, bakeRef)
	wantLabels := map[string]string{plan.KeyTitle: "bb", plan.KeyLayers: "stamp,other", plan.KeyParent: "busybox:latest"}
	wantAnn := maps.Clone(wantLabels)
	maps.Copy(wantAnn, map[string]string{plan.KeyCreated: "2023-11-14T22:13:20Z", plan.KeyRevision: rev,
		plan.KeySource: "https://example.com/o/r.git", plan.KeyVersion: "v1"})
	for what, d := range map[string]described{"ov build": ovImg, "bake": bakeImg} {
		labels := maps.Clone(d.labels)
		maps.DeleteFunc(labels, func(k, _ string) bool { return wantLabels[k] == "" }) // the base's
		if !maps.Equal(labels, wantLabels) {
			t.Errorf("%s: labels %v, want %v", what, d.labels, wantLabels)
		}
		if !maps.Equal(d.annotations, wantAnn) {
			t.Errorf("%s: annotations %v, want %v", what, d.annotations, wantAnn)
		}
		if !d.created.Equal(time.Unix(commit, 0)) {
			t.Errorf("%s: created %s, want the commit's time", what, d.created)
		}
	}
	if !maps.Equal(ovImg.labels, bakeImg.labels) {
		t.Errorf("labels differ: ov build %v, bake %v", ovImg.labels, bakeImg.labels)
	}
}
