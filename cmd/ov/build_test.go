package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/overthink/ov/internal/builddir"
	"github.com/overthink/ov/internal/testenv"
)

// buildProject writes a small project: a Debian image with one layer, a
// child built on it, and an image whose layer fails. pkg rpm keeps the
// bootstrap off the network (no apt).
func buildProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"images.yml": `defaults:
  registry: ov.test
  platforms: [linux/amd64]
  pkg: rpm
images:
  tiny:
    base: "debian:bookworm"
    layers: [hello]
  tiny-child:
    base: tiny
    layers: [child]
  broken:
    base: "debian:bookworm"
    layers: [broken]
`,
		"layers/hello/root.yml":  "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo hello > /hello.txt\n",
		"layers/child/root.yml":  "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo child > /child.txt\n",
		"layers/broken/root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo about to fail\n      - exit 7\n",
	}
	testenv.WriteFiles(t, dir, files)
	return dir
}

// buildEnv gets the test binary's build environment and points ov at it
// (base lookups through its registry); it returns the flags every ov build
// of the test passes: the builder and the pinned task archives.
func buildEnv(t *testing.T) []string {
	t.Helper()
	env := testenv.Get(t)
	t.Setenv("OV_REGISTRY_MIRRORS", "docker.io="+env.Registry)
	return []string{"--builder", env.BuildkitAddr, "--task-url", env.TaskBaseURL,
		"--task-sha256", "amd64=" + env.TaskSHA256["amd64"] + ",arm64=" + env.TaskSHA256["arm64"]}
}

// TestBuildCommand runs `ov build` in-process against a real buildkitd.
func TestBuildCommand(t *testing.T) {
	envFlags := buildEnv(t)
	dir := buildProject(t)
	common := append([]string{"-C", dir, "build", "--progress", "plain"}, envFlags...)

	t.Run("child", func(t *testing.T) {
		stdout, stderr, code := ov(t, append(common, "tiny-child")...)
		want := "built tiny-child (linux/amd64) -> oci:" + filepath.Join(dir, ".build", "oci", "tiny-child") + "\n"
		if code != 0 || stdout != "" || !strings.HasSuffix(stderr, want) {
			t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant it to end with %q", code, stdout, stderr, want)
		}
		if !strings.Contains(stderr, "[tiny hello] root.yml") || !strings.Contains(stderr, "[tiny-child child] root.yml") {
			t.Errorf("progress does not name the steps:\n%s", stderr)
		}
		idx, err := layout.ImageIndexFromPath(filepath.Join(dir, ".build", "oci", "tiny-child"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := idx.IndexManifest()
		if err != nil || len(m.Manifests) != 2 { // CalVer and latest
			t.Fatalf("index: %v, %+v", err, m)
		}
		for _, d := range m.Manifests {
			if n := d.Annotations["io.containerd.image.name"]; !strings.HasPrefix(n, "ov.test/tiny-child:") {
				t.Errorf("tag %q", n)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, ".build", "oci", "tiny")); !os.IsNotExist(err) {
			t.Errorf("the parent, built only into its child, was exported: %v", err)
		}
		// The builder is on this host: ov wrote the layers (export.Encoding)
		// and left no temp dir behind.
		assertEncoded(t, dir)
	})

	// Writing an OCI layout has containerd log through logrus (here, on a
	// filesystem without fs-verity: "failed check for fsverity support").
	// The real binary's stderr shows that only with --debug.
	t.Run("library logs", func(t *testing.T) {
		args := append(common, "--output", "oci:"+t.TempDir(), "--progress", "quiet", "tiny")
		_, stderr, code := ovProcess(t, args...)
		if code != 0 || strings.Contains(stderr, "level=") || !strings.HasPrefix(stderr, "built tiny (linux/amd64) -> oci:") {
			t.Errorf("exit %d; want nothing but the summary on stderr:\n%s", code, stderr)
		}
		// Nothing changed: nothing to build.
		_, stderr, code = ovProcess(t, args...)
		if code != 0 || !strings.HasPrefix(stderr, "up to date: tiny -> oci:") {
			t.Errorf("exit %d; want tiny up to date:\n%s", code, stderr)
		}
		_, stderr, code = ovProcess(t, append([]string{"--debug"}, append(args, "--force")...)...)
		if code != 0 || !strings.Contains(stderr, "level=") || !strings.Contains(stderr, "built tiny") {
			t.Errorf("exit %d; --debug --force shows no library log:\n%s", code, stderr)
		}
	})

	t.Run("failing step", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		_, stderr, code := ov(t, append(common, "--output", "oci:"+out, "--progress", "quiet", "broken")...)
		t.Logf("stderr:\n%s", stderr)
		for _, want := range []string{`ov: build failed: image "broken", layer "broken", step "root.yml"`, "exit code: 201", "about to fail"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		if code != 1 {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			if ents, _ := os.ReadDir(out); len(ents) > 0 {
				t.Errorf("failed build left %d entries in %s", len(ents), out)
			}
		}
		assertEncoded(t, dir)
	})

	t.Run("dry run", func(t *testing.T) {
		// An unreachable builder proves the dry run connects to nothing.
		args := []string{"-C", dir, "build", "--builder", "tcp://127.0.0.1:1", "--dry-run", "--push", "--offline-user", "tiny-child"}
		stdout, stderr, code := ov(t, args...)
		want := "tiny-child\n" +
			"  base:      tiny (built in this run)\n" +
			"  platforms: linux/amd64\n" +
			"  tags:      ov.test/tiny-child:2026.47.905 ov.test/tiny-child:latest\n" +
			"  output:    push\n" +
			"built into the images above, not exported: tiny\n"
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, stdout, want)
		}
	})

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"archive of two images": {[]string{"--output", "oci-archive:x.tar", "tiny", "tiny-child"}, "--output oci-archive:FILE holds one image, not 2"},
		"load two platforms":    {[]string{"--load", "--platform", "linux/amd64,linux/arm64", "tiny"}, "--load takes one platform"},
		"unknown output":        {[]string{"--output", "tar:x", "tiny"}, `unknown type "tar"`},
		"foreign platform":      {[]string{"--platform", "linux/s390x", "tiny"}, `image "tiny" builds for linux/amd64, not linux/s390x`},
		"bad cache":             {[]string{"--cache-to", "type=local,bogus", "tiny"}, "--cache-to: invalid value bogus"},
		"cache without type":    {[]string{"--cache-from", "ref=x,mode=max", "tiny"}, `cache "ref=x,mode=max": want type=registry`},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"-C", dir, "build", "--builder", "tcp://127.0.0.1:1", "--offline-user"}, tc.args...)
			_, stderr, code := ov(t, args...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, tc.want)
			}
		})
	}
}

// The summary and the dry run name each image's own destination, relative
// to the working directory when it lies inside it.
func TestBuildOutputPaths(t *testing.T) {
	dir := buildProject(t)
	elsewhere := t.TempDir()
	for name, tc := range map[string]struct {
		wd, project string   // working directory, -C
		flags       []string // of ov build
		want        string
	}{
		"in the project":   {dir, ".", nil, "oci:.build/oci/tiny-child"},
		"above it":         {filepath.Dir(dir), filepath.Base(dir), nil, "oci:" + filepath.Join(filepath.Base(dir), ".build", "oci", "tiny-child")},
		"outside it":       {elsewhere, dir, nil, "oci:" + filepath.Join(dir, ".build", "oci", "tiny-child")},
		"--output oci":     {elsewhere, dir, []string{"-o", "oci:out"}, "oci:out/tiny-child"},
		"--output archive": {elsewhere, dir, []string{"-o", "oci-archive:" + filepath.Join(elsewhere, "t.tar")}, "oci-archive:t.tar"},
		"load and push":    {dir, ".", []string{"--load", "--push", "--engine", "docker"}, "push\n  output:    docker load"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Chdir(tc.wd)
			args := append([]string{"-C", tc.project, "build", "--builder", "tcp://127.0.0.1:1", "--dry-run", "--offline-user", "tiny-child"}, tc.flags...)
			stdout, stderr, code := ov(t, args...)
			if want := "  output:    " + tc.want + "\n"; code != 0 || !strings.Contains(stdout, want) {
				t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant a line %q", code, stderr, stdout, want)
			}
		})
	}
}

// TestBuildUpToDatePerImage: whether an image is up to date does not
// depend on the other images a build names. After `ov build bb-child`,
// `ov build` builds bb (never exported) and not bb-child; then either image
// alone solves nothing. A parent built only into its edited child keeps
// its own last export: the `ov build` after solves nothing either.
// Solves are counted in buildkitd's build history.
func TestBuildUpToDatePerImage(t *testing.T) {
	envFlags := buildEnv(t)
	c := testenv.Get(t).Client(t)
	dir := explainProject(t)
	// build runs ov build on images and returns the images it built and
	// those up to date, checking the solves against what was built.
	build := func(images ...string) (built, upToDate []string) {
		t.Helper()
		start := time.Now()
		args := append(append([]string{"-C", dir, "build", "--progress", "quiet"}, envFlags...), images...)
		_, stderr, code := ov(t, args...)
		if code != 0 {
			t.Fatalf("ov build %q: exit %d:\n%s", images, code, stderr)
		}
		for _, line := range strings.Split(stderr, "\n") {
			if n, ok := strings.CutPrefix(line, "built "); ok {
				built = append(built, strings.Fields(n)[0])
			}
			if n, ok := strings.CutPrefix(line, "up to date: "); ok {
				upToDate = append(upToDate, strings.Fields(n)[0])
			}
		}
		if n := testenv.SolvesSince(t, c, start); (n == 0) != (len(built) == 0) {
			t.Errorf("ov build %q built %q with %d solves", images, built, n)
		}
		return built, upToDate
	}
	for _, step := range []struct {
		images          []string
		built, upToDate []string
		edit            bool // bb-child's layer
	}{
		{images: []string{"bb-child"}, built: []string{"bb-child"}},
		{built: []string{"bb"}, upToDate: []string{"bb-child"}},
		{images: []string{"bb-child"}, upToDate: []string{"bb-child"}},
		{images: []string{"bb"}, upToDate: []string{"bb"}},
		{edit: true, images: []string{"bb-child"}, built: []string{"bb-child"}},
		{upToDate: []string{"bb", "bb-child"}},
	} {
		if step.edit {
			testenv.WriteFiles(t, dir, map[string]string{"layers/third/third.txt": "edited\n"})
		}
		built, upToDate := build(step.images...)
		if !slices.Equal(built, step.built) || !slices.Equal(upToDate, step.upToDate) {
			t.Errorf("ov build %q: built %q, up to date %q; want %q, %q", step.images, built, upToDate, step.built, step.upToDate)
		}
	}
}

// assertEncoded fails unless the project at dir has layers ov encoded in
// its export store and no export's temp dir.
func assertEncoded(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(builddir.ExportStore), "encoded"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind in the export store: %s", e.Name())
			continue
		}
		n++
	}
	if n == 0 {
		t.Error("no layer encoded by ov: the build did not go through export.Encoding")
	}
}
