package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/merge"
)

// mergeProject is a Debian image with a merge block and three small layers,
// and one without.
func mergeProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	layer := func(n string) string {
		return fmt.Sprintf("version: '3'\ntasks:\n  install:\n    cmds:\n      - mkdir -p /m && echo %s > /m/%s && rm -f /m/gone\n      - echo %s > /m/gone\n", n, n, n)
	}
	files := map[string]string{
		"images.yml": `defaults:
  registry: ov.test
  platforms: [linux/amd64]
  pkg: rpm
images:
  merged:
    base: "debian:bookworm"
    layers: [one, two, three]
    merge:
      max_mb: 1
  plain:
    base: "debian:bookworm"
    layers: [one]
`,
		"layers/one/root.yml":   layer("one"),
		"layers/two/root.yml":   layer("two"),
		"layers/three/root.yml": layer("three"),
	}
	testenv.WriteFiles(t, dir, files)
	return dir
}

func TestBuildMergeFlags(t *testing.T) {
	dir := mergeProject(t)
	dry := []string{"-C", dir, "build", "--builder", "tcp://127.0.0.1:1", "--dry-run", "--offline-user", "--output", "oci:out"}
	for name, tc := range map[string]struct {
		args []string
		want map[string]string // image -> merge line ("" = none)
	}{
		"images.yml":      {nil, map[string]string{"merged": "1 MB", "plain": ""}},
		"--merge":         {[]string{"--merge"}, map[string]string{"merged": "1 MB", "plain": "128 MB"}},
		"--max-mb":        {[]string{"--max-mb", "7"}, map[string]string{"merged": "7 MB", "plain": ""}},
		"--merge+max-mb":  {[]string{"--merge", "--max-mb", "7"}, map[string]string{"merged": "7 MB", "plain": "7 MB"}},
		"--no-merge":      {[]string{"--no-merge"}, map[string]string{"merged": "", "plain": ""}},
		"--no-merge+size": {[]string{"--no-merge", "--max-mb", "7"}, map[string]string{"merged": "", "plain": ""}},
	} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, code := ov(t, append(dry, tc.args...)...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for img, want := range tc.want {
				_, rest, ok := strings.Cut(stdout, img+"\n")
				if !ok {
					t.Fatalf("no %s in the dry run:\n%s", img, stdout)
				}
				got := ""
				for _, line := range strings.Split(rest, "\n") {
					if !strings.HasPrefix(line, "  ") {
						break
					}
					if m, ok := strings.CutPrefix(line, "  merge:     layers up to "); ok {
						got = m
					}
				}
				if got != want {
					t.Errorf("%s: merge %q, want %q; stdout:\n%s", img, got, want, stdout)
				}
			}
		})
	}
	for name, args := range map[string][]string{
		"--merge --no-merge": {"--merge", "--no-merge"},
		"--max-mb=-1":        {"--max-mb=-1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, stderr, code := ov(t, append(dry, args...)...)
			if code != 1 || !strings.Contains(stderr, strings.Fields(strings.Split(name, "=")[0])[0]) {
				t.Errorf("exit %d, stderr %q", code, stderr)
			}
		})
	}
}

// TestBuildMergeCommand builds the image with a merge block with and
// without merging against a real buildkitd.
func TestBuildMergeCommand(t *testing.T) {
	envFlags := buildEnv(t)
	dir := mergeProject(t)
	common := append([]string{"-C", dir, "build", "--progress", "quiet"}, envFlags...)

	plainOut, mergedOut := t.TempDir(), t.TempDir()
	if _, stderr, code := ov(t, append(common, "--no-merge", "-o", "oci:"+plainOut, "merged")...); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	_, stderr, code := ov(t, append(common, "-o", "oci:"+mergedOut, "merged")...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	image := func(dir string) v1.Image {
		idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "merged"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := testenv.FindImage(idx, "linux/amd64")
		if err != nil {
			// One entry per tag: the same image twice.
			m, _ := idx.IndexManifest()
			if img, err = idx.Image(m.Manifests[0].Digest); err != nil {
				t.Fatal(err)
			}
		}
		return img
	}
	plain, merged := image(plainOut), image(mergedOut)
	groups, err := merge.Plan(plain, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := plain.Layers()
	ml, _ := merged.Layers()
	if len(ml) != len(groups) || len(ml) >= len(pl) {
		t.Errorf("%d layers, merged %d; merge.Plan groups %d", len(pl), len(ml), len(groups))
	}
	want := fmt.Sprintf("built merged (linux/amd64) -> oci:%s/merged (merged linux/amd64: %d -> %d layers)\n", mergedOut, len(pl), len(ml))
	t.Logf("%d layers, merged %d", len(pl), len(ml))
	if !strings.HasSuffix(stderr, want) {
		t.Errorf("stderr %q, want it to end with %q", stderr, want)
	}
	pf, err := testenv.Flatten(plain)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := testenv.Flatten(merged)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pf, mf) {
		t.Errorf("merged filesystem differs from the unmerged one")
	}
	if f := mf["/m/gone"]; f.Size != len64("three\n") {
		t.Errorf("/m/gone = %+v", f)
	}
	if ents, _ := os.ReadDir(mergedOut); len(ents) != 1 {
		t.Errorf("output dir holds %d entries", len(ents))
	}
}

func len64(s string) int64 { return int64(len(s)) }
