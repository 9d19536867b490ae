package llb

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
)

// pixiProject has one image per pixi manifest kind. Its plans use the
// default pixi image, which the test env serves as testenv.FakePixi.
var pixiProject = map[string]string{
	"images.yml": `defaults:
  registry: ov.test
  platforms:
    - linux/amd64
  pkg: deb

images:
  pixi-toml:
    base: "ovtest/userbase:bookworm"
    layers:
      - sci
  pixi-env:
    base: "ovtest/userbase:bookworm"
    layers:
      - analysis
  pixi-pyproject:
    base: "busybox:latest"
    pkg: rpm
    platforms:
      - linux/amd64
      - linux/arm64
    layers:
      - app
`,
	"layers/sci/pixi.toml": `[workspace]
name = "sci"
channels = ["conda-forge"]
platforms = ["linux-64", "linux-aarch64"]

[dependencies]
python = "3.13.*"
numpy = ">=1.26"
`,
	"layers/sci/pixi.lock": "version: 6\n# test lock: copied into the stage beside pixi.toml\n",
	"layers/analysis/environment.yml": `name: analysis
channels:
  - conda-forge
dependencies:
  - python=3.12
  - pandas >=2
`,
	"layers/app/pyproject.toml": `[project]
name = "app"
version = "0.1.0"

[tool.pixi.workspace]
channels = ["conda-forge"]
platforms = ["linux-64", "linux-aarch64"]

[tool.pixi.dependencies]
python = "3.13.*"
`,
}

// pixiWant is what each image's environment must hold: its dependencies and
// the layer files it was installed from.
var pixiWant = map[string]struct {
	deps    []string
	sources []string // layer files whose sha256sum lines the fake records
}{
	"pixi-toml":      {[]string{"numpy", "python"}, []string{"layers/sci/pixi.toml", "layers/sci/pixi.lock"}},
	"pixi-env":       {[]string{"pandas", "python"}, []string{"layers/analysis/environment.yml"}},
	"pixi-pyproject": {[]string{"python"}, []string{"layers/app/pyproject.toml"}},
}

// TestPixiStageWithFakePixiImage builds pixi layers of all three manifest
// kinds with ov build and with `docker buildx bake` of the generated files,
// with the pixi image replaced by a test double (testenv.FakePixi: pixi's
// image and conda-forge are out of reach). It checks that the environment
// the pixi stage installed from the layer's manifest lands in the user's
// home owned by the user, with the pixi binary beside it, and that both back
// ends produce the same files.
func TestPixiStageWithFakePixiImage(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, pixiProject)
	p, plans := planProject(t, ctx, env, dir)
	for _, pl := range plans {
		if len(pl.Pixi) != 1 || pl.Pixi[0].Image != plan.DefaultPixiImage {
			t.Fatalf("%s: pixi stages %+v, want one on %s", pl.Name, pl.Pixi, plan.DefaultPixiImage)
		}
	}

	out := filepath.Join(dir, ".out") // bake may write only below its directory
	start := time.Now()
	if _, err := Build(ctx, env.Client(t), BuildOptions{Family: plans, Exporter: export.OCILayout(filepath.Join(out, "ov"))}); err != nil {
		t.Fatalf("ov build: %v", err)
	}
	t.Logf("ov build: %s", time.Since(start).Round(time.Millisecond))

	bake := bakeAll(t, dir, p, plans, out)
	start = time.Now()
	runBake(t, ctx, env, bake)
	t.Logf("bake: %s", time.Since(start).Round(time.Millisecond))

	for _, pl := range plans {
		t.Run(pl.Name, func(t *testing.T) {
			want := pixiWant[pl.Name]
			u := pl.User
			envDir := path.Join(u.Home, ".pixi/envs/default")
			var sums []string
			for _, src := range want.sources {
				b, err := os.ReadFile(filepath.Join(dir, src))
				if err != nil {
					t.Fatal(err)
				}
				sums = append(sums, sha256hex(string(b))+"  "+path.Base(src))
			}

			ovImgs := layoutImages(t, filepath.Join(out, "ov", pl.Name))
			bakeImgs := layoutImages(t, filepath.Join(out, "bake", pl.Name))
			if got := slices.Sorted(maps.Keys(ovImgs)); !slices.Equal(got, pl.Platforms) {
				t.Fatalf("ov build platforms %q, want %q", got, pl.Platforms)
			}
			for _, platform := range pl.Platforms {
				fs, data := scanFS(t, ovImgs[platform], envDir+"/conda-meta/")
				// The COPY creates the directories above the environment owned
				// by the user too, so pixi run as the user can add to them.
				for _, d := range []string{".pixi", ".pixi/envs", ".pixi/envs/default", ".pixi/envs/default/bin"} {
					if f := fs[path.Join(u.Home, d)]; f.Type != tar.TypeDir || f.UID != u.UID || f.GID != u.GID {
						t.Errorf("%s ~/%s = %+v, want a directory owned by %d:%d", platform, d, f, u.UID, u.GID)
					}
				}
				for _, dep := range want.deps {
					bin := path.Join(envDir, "bin", dep)
					wantBin := FileInfo{Type: tar.TypeReg, Mode: 0o755, UID: u.UID, GID: u.GID,
						SHA256: sha256hex("#!/bin/sh\necho \"" + dep + " from fake pixi\"\n")}
					if got := fs[bin]; got != wantBin {
						t.Errorf("%s %s = %+v, want %+v", platform, bin, got, wantBin)
					}
				}
				var bins []string
				for p := range fs {
					if d, f := path.Split(p); d == envDir+"/bin/" && f != "" {
						bins = append(bins, f)
					}
				}
				if slices.Sort(bins); !slices.Equal(bins, want.deps) {
					t.Errorf("%s %s/bin holds %q, want %q", platform, envDir, bins, want.deps)
				}
				// The environment came from this layer's manifest.
				sumPath := path.Join(envDir, testenv.FakePixiChecksums)
				if got := strings.Split(strings.TrimSpace(data[sumPath]), "\n"); !containsAll(got, sums) {
					t.Errorf("%s %s = %q, want lines %q", platform, testenv.FakePixiChecksums, got, sums)
				}
				if f := fs[sumPath]; f.UID != u.UID || f.GID != u.GID {
					t.Errorf("%s %s owned by %d:%d, want %d:%d", platform, sumPath, f.UID, f.GID, u.UID, u.GID)
				}
				// With a pixi.lock, exactly the lock is installed.
				wantCmd := "# cmd: pixi install\n"
				if slices.Contains(want.sources, "layers/sci/pixi.lock") {
					wantCmd = "# cmd: pixi install --frozen\n"
				} else if pl.Name == "pixi-pyproject" {
					wantCmd = "# cmd: pixi install --manifest-path pyproject.toml\n"
				}
				if h := data[path.Join(envDir, "conda-meta/history")]; !strings.Contains(h, wantCmd) {
					t.Errorf("%s: history lacks %q:\n%s", platform, wantCmd, h)
				}
				arch := map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[platform]
				if h := data[path.Join(envDir, "conda-meta/history")]; !strings.Contains(h, "# platform: "+arch+"\n") {
					t.Errorf("%s: history does not say the stage ran on %s:\n%s", platform, arch, h)
				}
				wantPixi := FileInfo{Type: tar.TypeReg, Mode: 0o755, SHA256: sha256hex(testenv.FakePixiScript)}
				if got := fs[plan.PixiBinary]; got != wantPixi {
					t.Errorf("%s %s = %+v, want the fake pixi script, root 0755", platform, plan.PixiBinary, got)
				}
				// Nothing else of the stage's working directory comes along.
				for _, f := range []string{"pixi.toml", "pixi.lock", "environment.yml", "pyproject.toml"} {
					if _, ok := fs[path.Join(u.Home, f)]; ok {
						t.Errorf("%s: stage file %s copied into the home", platform, f)
					}
				}

				bi := bakeImgs[platform]
				if bi == nil {
					t.Errorf("bake built no %s image", platform)
					continue
				}
				bakeFS, _ := scanFS(t, bi, "")
				if diffs := DiffFiles(bakeFS, fs); len(diffs) > 0 {
					t.Errorf("%s: bake and ov build differ in %d paths:\n%s", platform, len(diffs), strings.Join(diffs[:min(len(diffs), 40)], "\n"))
				}
			}
		})
	}
}

// scanFS is Flatten plus the content of the regular files under keep (no
// file when keep is empty), in one pass over the image.
func scanFS(t *testing.T, img v1.Image, keep string) (map[string]FileInfo, map[string]string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	fs, data := map[string]FileInfo{}, map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Clean("/" + h.Name)
		e := FileInfo{Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, Link: h.Linkname}
		if h.Typeflag == tar.TypeReg {
			sum, body := sha256.New(), &strings.Builder{}
			w := io.Writer(sum)
			if keep != "" && strings.HasPrefix(p, keep) {
				w = io.MultiWriter(sum, body)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			e.SHA256 = hex.EncodeToString(sum.Sum(nil))
			if body.Len() > 0 {
				data[p] = body.String()
			}
		}
		fs[p] = e
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
