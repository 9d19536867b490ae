package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overthink/ov/internal/testenv"
)

// TestVerifyFamily runs `ov build --verify` on the e2e family, whose
// unordered layers write the same files (the check attaches them) and
// delete what another created (that layer runs on every layer before it):
// every image must build detached exactly as in one chain.
func TestVerifyFamily(t *testing.T) {
	verifyProject(t, filepath.Join("e2e", "testdata", "family"), "deb-parent", "deb-child", "bb-multi", "user-base")
}

// TestVerifyExamples runs `ov build --verify` on examples/hello, the
// family `go tool task demo` builds.
func TestVerifyExamples(t *testing.T) {
	verifyProject(t, filepath.Join("examples", "hello"), "hello", "hello-child")
}

func verifyProject(t *testing.T, rel string, images ...string) {
	env := testenv.Get(t)
	dir := t.TempDir()
	if err := copyDir(filepath.Join(env.RepoRoot, rel), dir); err != nil {
		t.Fatal(err)
	}
	verifyDir(t, env, dir, images...)
}

// verifyDir runs `ov build --verify` in dir and expects images verified.
func verifyDir(t *testing.T, env *testenv.Env, dir string, images ...string) {
	t.Helper()
	out, err := runOV(env, dir, "build", "--verify", "--progress", "quiet")
	if err != nil {
		t.Fatal(err)
	}
	line := ""
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, "verified ") && strings.HasSuffix(l, ": each builds detached exactly as in one chain") {
			line = l
		}
	}
	for _, img := range images {
		if !strings.Contains(line, " "+img) {
			t.Errorf("ov build --verify does not report %s verified:\n%s", img, out)
		}
	}
}

// TestVerifyReportsMissingDepends: a layer reading a file of a layer it
// does not depend on builds differently detached (no diff shows a read);
// `ov build --verify` exits 1 naming the path, its writer and the depends
// line that fixes it, and passes once that line is in layer.yml.
func TestVerifyReportsMissingDepends(t *testing.T) {
	env := testenv.Get(t)
	dir := t.TempDir()
	files := map[string]string{
		"images.yml": "defaults:\n  registry: ov.test\n  platforms: [linux/amd64]\n  pkg: rpm\n" +
			"images:\n  reads:\n    base: \"busybox:latest\"\n    layers: [writer, reader]\n",
		"layers/writer/root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - mkdir -p /opt/w\n      - echo written > /opt/w/data.txt\n",
		"layers/reader/root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - mkdir -p /opt\n      - cat /opt/w/data.txt > /opt/read.txt 2>/dev/null || echo none > /opt/read.txt\n",
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runOV(env, dir, "build", "--verify", "--progress", "quiet")
	if err == nil {
		t.Fatalf("ov build --verify passed with a missing depends:\n%s", out)
	}
	for _, want := range []string{
		"image reads (linux/amd64): /opt/read.txt differs",
		"written by: reader\n",
		"fix: layers/reader/layer.yml: depends: [writer]\n",
		"verify: 1 difference(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ov build --verify output lacks %q:\n%s", want, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "layers", "reader", "layer.yml"), []byte("depends: [writer]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyDir(t, env, dir, "reads")
}
