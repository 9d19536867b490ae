package main

import (
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/overthink/ov/internal/testenv"
)

// genProject writes a one-image project whose base is ref.
func genProject(t *testing.T, base string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"images.yml":                 "images:\n  app:\n    base: \"" + base + "\"\n    pkg: deb\n    tag: auto\n    registry: ov.test\n    platforms: [linux/amd64]\n    layers: [hello]\n",
		"layers/hello/layer.yml":     "deb:\n  packages: [curl]\nports: [8080]\n",
		"layers/hello/user.yml":      "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo hi\n",
		".build/stale/Containerfile": "# .build/stale/Containerfile (generated -- do not edit)\n",
	}
	testenv.WriteFiles(t, dir, files)
	return dir
}

func ovIn(dir string, now time.Time, args ...string) (int, string) {
	var o, e bytes.Buffer
	code := run(append([]string{"-C", dir}, args...), &o, &e, now)
	return code, o.String() + e.String()
}

func TestGenerateCommand(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("OV_OFFLINE", "")
	t.Setenv("OV_TASK_URL", "")
	t.Setenv("OV_TASK_SHA256", "")
	t.Setenv("OV_REGISTRY_MIRRORS", "")

	// A registry whose base has user ubuntu at uid 1000.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	layer, err := crane.Layer(map[string][]byte{"etc/passwd": []byte("root:x:0:0::/root:/bin/sh\nubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(img, host+"/ovtest/userbase:bookworm", crane.Insecure); err != nil {
		t.Fatal(err)
	}

	dir := genProject(t, "ovtest/userbase:bookworm")
	t.Setenv("OV_REGISTRY_MIRRORS", "docker.io="+host)
	sum := strings.Repeat("a", 64)
	now := time.Date(2026, 2, 16, 9, 5, 0, 0, time.UTC)
	code, out := ovIn(dir, now, "generate", "--task-url", "http://127.0.0.1:9/task/", "--task-sha256", "amd64="+sum+",arm64="+strings.Repeat("b", 64))
	if code != 0 || !strings.Contains(out, "generated .build/docker-bake.hcl: 1 images (app)") {
		t.Fatalf("exit %d: %s", code, out)
	}
	cf, _ := os.ReadFile(filepath.Join(dir, ".build/app/Containerfile"))
	for _, want := range []string{"WORKDIR /home/ubuntu\n", "useradd -m -u 1000 -g 1000 -s /bin/bash ubuntu)", "url=http://127.0.0.1:9/task/task_linux_", "amd64) sum=" + sum, "EXPOSE 8080\n"} {
		if !bytes.Contains(cf, []byte(want)) {
			t.Errorf("Containerfile lacks %q:\n%s", want, cf)
		}
	}
	hcl, _ := os.ReadFile(filepath.Join(dir, ".build/docker-bake.hcl"))
	if !bytes.Contains(hcl, []byte(`"ov.test/app:2026.47.905", "ov.test/app:latest"`)) {
		t.Errorf("bake file tags:\n%s", hcl)
	}
	if _, err := os.Stat(filepath.Join(dir, ".build/stale")); err == nil {
		t.Error("stale image directory kept")
	}

	// --tag; the same again is byte-identical.
	code, out = ovIn(dir, now, "generate", "--tag", "v1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	first, _ := os.ReadFile(filepath.Join(dir, ".build/docker-bake.hcl"))
	if code, out = ovIn(dir, now.Add(time.Hour), "generate", "--tag", "v1"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	second, _ := os.ReadFile(filepath.Join(dir, ".build/docker-bake.hcl"))
	if !bytes.Equal(first, second) || !bytes.Contains(first, []byte(`tags       = ["ov.test/app:v1", "ov.test/app:latest"]`)) {
		t.Errorf("--tag runs differ or lack the tag:\n%s\n%s", first, second)
	}

	if code, out = ovIn(dir, now, "generate", "--tag", "bad tag"); code != 1 || !strings.Contains(out, "--tag") {
		t.Errorf("bad tag: exit %d: %s", code, out)
	}
}

func TestGenerateUnreachableBase(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("OV_OFFLINE", "")
	t.Setenv("OV_REGISTRY_MIRRORS", "")
	srv := httptest.NewServer(nil)
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close() // nothing listens there now
	dir := genProject(t, host+"/base:1")

	code, out := ovIn(dir, time.Now(), "generate")
	if code != 1 || !strings.Contains(out, `base "`+host+`/base:1"`) || !strings.Contains(out, "--offline-user") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, ".build/app")); err == nil {
		t.Error("files written despite the error")
	}

	// Proceeding on the configured user, by flag or environment.
	for _, args := range [][]string{{"generate", "--offline-user"}, {"generate"}} {
		if len(args) == 1 {
			t.Setenv("OV_OFFLINE", "1")
		}
		code, out = ovIn(dir, time.Now(), args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, out)
		}
		cf, _ := os.ReadFile(filepath.Join(dir, ".build/app/Containerfile"))
		if !bytes.Contains(cf, []byte("WORKDIR /home/user\n")) {
			t.Errorf("%v: Containerfile:\n%s", args, cf)
		}
	}
}

// --source-date-epoch and SOURCE_DATE_EPOCH give the bake file an explicit
// epoch (the steps see it); a bad one is exit 1; without either, a
// project that is no git checkout gets now, left to bake's run: the file
// says nothing of it.
func TestGenerateSourceDateEpoch(t *testing.T) {
	t.Setenv("OV_OFFLINE", "1")
	t.Setenv("SOURCE_DATE_EPOCH", "")
	dir := genProject(t, "debian:bookworm")
	hcl := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, ".build", "docker-bake.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if code, out := ovIn(dir, time.Now(), "generate", "--source-date-epoch", "1234"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if h := hcl(); !strings.Contains(h, `default = "1234"`) || !strings.Contains(h, "SOURCE_DATE_EPOCH = SOURCE_DATE_EPOCH") {
		t.Errorf("--source-date-epoch 1234:\n%s", h)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "99")
	if code, out := ovIn(dir, time.Now(), "generate"); code != 0 || !strings.Contains(hcl(), `default = "99"`) {
		t.Errorf("SOURCE_DATE_EPOCH=99: exit %d: %s\n%s", code, out, hcl())
	}
	t.Setenv("SOURCE_DATE_EPOCH", "soon")
	if code, out := ovIn(dir, time.Now(), "generate"); code != 1 || !strings.Contains(out, "--source-date-epoch") {
		t.Errorf("SOURCE_DATE_EPOCH=soon: exit %d: %s", code, out)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if code, out := ovIn(dir, time.Now(), "generate"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if h := hcl(); strings.Contains(h, "SOURCE_DATE_EPOCH") || strings.Contains(h, "output") {
		t.Errorf("no epoch, no git checkout:\n%s", h)
	}
}

// In a clean git checkout, generate stamps the bake file with the last
// commit's time and names the commit and the remote (no credentials),
// git having run while the project loaded (loadWithEpoch).
func TestGenerateEpochAndOriginFromGit(t *testing.T) {
	t.Setenv("OV_OFFLINE", "1")
	t.Setenv("SOURCE_DATE_EPOCH", "")
	dir := genProject(t, "debian:bookworm")
	if err := os.RemoveAll(filepath.Join(dir, ".build")); err != nil {
		t.Fatal(err)
	}
	rev := gitCommit(t, dir, 1700000000)
	if out, err := exec.Command("git", "-C", dir, "remote", "add", "origin", "https://token@example.com/o/r.git").CombinedOutput(); err != nil {
		t.Fatalf("git remote add: %v\n%s", err, out)
	}
	if code, out := ovIn(dir, time.Now(), "generate"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, ".build", "docker-bake.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`default = "1700000000"`, "manifest:org.opencontainers.image.revision=" + rev,
		"manifest:org.opencontainers.image.source=https://example.com/o/r.git"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bake file lacks %q:\n%s", want, b)
		}
	}
}
