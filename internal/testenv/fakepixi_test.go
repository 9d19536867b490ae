package testenv_test

import (
	"archive/tar"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client/llb"

	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
)

// fakePixiCases runs the fake pixi the ways ov's pixi stages do, and the
// ways it must refuse, writing what happened to /out.
const fakePixiCases = `set -u
run() { # run CASE CMD...: exit status and stderr of CMD
	c=$1; shift
	"$@" >/dev/null 2>/out/$c.err; echo $? >/out/$c.rc
}
mkdir -p /w/toml /w/env /w/pyproject /w/empty /w/missing /w/notable /w/nodeps /w/badname && cd /w/toml
cat >pixi.toml <<'EOF'
[workspace]
name = "sci"
channels = ["conda-forge"]
platforms = ["linux-64", "linux-aarch64"]

[dependencies]
python = "3.13.*"
numpy = ">=1.26"

[feature.test.dependencies]
pytest = "*"
EOF
echo "lock v6" >pixi.lock
run toml pixi install
ls .pixi/envs/default/bin >/out/toml.bin
.pixi/envs/default/bin/numpy >/out/toml.numpy
sha256sum -c .pixi/envs/default/conda-meta/fake-pixi.sha256 >/out/toml.sums
cp .pixi/envs/default/conda-meta/history /out/toml.history

cd /w/env
cat >environment.yml <<'EOF'
name: analysis
channels:
  - conda-forge
dependencies:
  - python=3.12
  - pandas >=2
  - pip:
      - requests
EOF
run env sh -c 'pixi init --import environment.yml && pixi install'
ls .pixi/envs/default/bin >/out/env.bin
sha256sum -c .pixi/envs/default/conda-meta/fake-pixi.sha256 >/out/env.sums

cd /w/pyproject
cat >pyproject.toml <<'EOF'
[project]
name = "app"
dependencies = ["requests"]

[tool.pixi.workspace]
channels = ["conda-forge"]
platforms = ["linux-64", "linux-aarch64"]

[tool.pixi.dependencies]
python = "3.13.*"
EOF
run pyproject pixi install --manifest-path pyproject.toml
ls .pixi/envs/default/bin >/out/pyproject.bin

cd /w/empty
printf '[workspace]\nname = "pixi"\n\n[dependencies]\n' >pixi.toml
run empty pixi install
ls -A .pixi/envs/default/bin >/out/empty.bin

cd /w/missing && run missing pixi install
cd /w/notable && printf '[workspace]\nname = "x"\n' >pixi.toml && run notable pixi install
cd /w/nodeps && printf 'name: x\nchannels: [conda-forge]\n' >environment.yml && run nodeps pixi init --import environment.yml
cd /w/badname && printf '[dependencies]\n"../../etc/x" = "1"\n' >pixi.toml && run badname pixi install
ls -A /w/badname >/out/badname.ls
run unknown pixi run python
`

// TestFakePixiImage: the test double for ghcr.io/prefix-dev/pixi is served
// under FakePixi and under plan.DefaultPixiImage through buildkitd's ghcr.io
// mirror, for both platforms, and its pixi installs what the manifests list
// and refuses what it cannot install.
func TestFakePixiImage(t *testing.T) {
	env := testenv.Get(t)
	fake, err := remote.Index(mirrored(t, env, testenv.FakePixi), remote.WithContext(ctx(t)))
	if err != nil {
		t.Fatal(err)
	}
	def, err := remote.Index(mirrored(t, env, plan.DefaultPixiImage), remote.WithContext(ctx(t)))
	if err != nil {
		t.Fatal(err)
	}
	fd, _ := fake.Digest()
	dd, _ := def.Digest()
	if fd != dd {
		t.Errorf("%s is %s, %s is %s: want the same index", testenv.FakePixi, fd, plan.DefaultPixiImage, dd)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		img, err := testenv.FindImage(fake, p)
		if err != nil {
			t.Fatalf("fake pixi %s: %v", p, err)
		}
		snap, err := testenv.Snap(img)
		if err != nil {
			t.Fatal(err)
		}
		if f := snap.Files[plan.PixiBinary]; f.Type != tar.TypeReg || f.Mode != 0o755 || f.SHA256 != sha(testenv.FakePixiScript) {
			t.Errorf("%s %s = %+v, want the fake script, 0755", p, plan.PixiBinary, f)
		}
		if f := snap.Files["/bin/sh"]; f.Linkname != "/bin/busybox" {
			t.Errorf("%s /bin/sh = %+v, want busybox", p, f)
		}
	}

	for _, p := range []struct {
		c    llb.ConstraintsOpt
		arch string
	}{{llb.LinuxAmd64, "x86_64"}, {llb.LinuxArm64, "aarch64"}} {
		t.Run(p.arch, func(t *testing.T) {
			// Pulled by the name pixi stages use: through the ghcr.io mirror.
			got := solve(t, script(llb.Image(plan.DefaultPixiImage), fakePixiCases), p.c)
			for _, c := range []string{"toml", "env", "pyproject", "empty"} {
				if got[c+".rc"] != "0" {
					t.Errorf("%s: exit %s: %s", c, got[c+".rc"], got[c+".err"])
				}
			}
			for k, want := range map[string]string{
				"toml.bin":      "numpy\npython",
				"toml.numpy":    "numpy from fake pixi",
				"toml.sums":     "pixi.toml: OK\npixi.lock: OK",
				"env.bin":       "pandas\npython",
				"env.sums":      "pixi.toml: OK\nenvironment.yml: OK",
				"pyproject.bin": "python",
				"empty.bin":     "",
				"badname.ls":    "pixi.toml",
			} {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
			if h := got["toml.history"]; !strings.Contains(h, "# cmd: pixi install\n") || !strings.Contains(h, "# platform: "+p.arch+"\n") ||
				!strings.Contains(h, `+fake-pixi::python "3.13.*"`) || strings.Contains(h, "pytest") {
				t.Errorf("history:\n%s", h)
			}
			for c, msg := range map[string]string{
				"missing": "fake pixi: install: no manifest: /w/missing/pixi.toml not found",
				"notable": "fake pixi: install: pixi.toml has no [dependencies] table",
				"nodeps":  "fake pixi: init: environment.yml has no dependencies list",
				"badname": "fake pixi: pixi.toml: bad dependency name '../../etc/x'",
				"unknown": "fake pixi: unsupported command 'run'",
			} {
				if got[c+".rc"] != "1" || !strings.HasPrefix(got[c+".err"], msg) {
					t.Errorf("%s: exit %s, stderr %q; want 1, %q", c, got[c+".rc"], got[c+".err"], msg)
				}
			}
		})
	}
}
