package llb

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
)

// compatProject is small and fast (busybox bases, no package installs): a
// bootc image on a ublue-shaped base and a CI runner child with its own
// user root.
var compatProject = map[string]string{
	"images.yml": `defaults:
  registry: ov.test
  platforms:
    - linux/amd64
  pkg: rpm

images:
  bootc-link:
    base: "ovtest/bootc-usrlocal:latest"
    bootc: true
    layers:
      - marker
  bb-parent:
    base: "busybox:latest"
    layers:
      - marker
  bb-runner:
    base: bb-parent
    user: root
    uid: 0
    gid: 0
    layers:
      - runner
`,
	"layers/marker/root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo marker > /marker.txt\n",
	"layers/marker/user.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - id -u > \"$HOME/who.txt\"\n",
	"layers/runner/user.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n      - mkdir -p \"$HOME/runner\"\n      - echo \"$(id -u) $HOME\" > \"$HOME/runner/installed.txt\"\n",
}

// TestCompatBusyboxImages builds compatProject with ov build and with bake
// and compares them as TestEquivalentToBake does, then checks: the
// bootstrap made the missing target of /usr/local's link (issue 12 item 7),
// the fake bootc lint passed (it fails unless run as root, item 6) and the
// final user stayed 1000; the runner's own steps ran as root in /root and
// it ends as USER 0 (item 4).
func TestCompatBusyboxImages(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, compatProject)
	p, plans := planProject(t, ctx, env, dir)
	out := filepath.Join(dir, ".out")
	if _, err := Build(ctx, env.Client(t), BuildOptions{Family: plans, Exporter: export.OCILayout(filepath.Join(out, "ov"))}); err != nil {
		t.Fatalf("ov build: %v", err)
	}
	runBake(t, ctx, env, bakeAll(t, dir, p, plans, out))

	want := map[string]struct {
		user, workdir string
		files         map[string]FileInfo // type, uid, gid and content checked
	}{
		"bootc-link": {"1000", "/home/user", map[string]FileInfo{
			"/usr/local":             {Type: '2', Link: "../var/usrlocal"},
			"/var/usrlocal/bin/task": {Type: '0'},
			"/marker.txt":            {Type: '0', SHA256: sha256hex("marker\n")},
			"/home/user/who.txt":     {Type: '0', UID: 1000, GID: 1000, SHA256: sha256hex("1000\n")},
		}},
		"bb-runner": {"0", "/root", map[string]FileInfo{
			"/root/runner/installed.txt": {Type: '0', SHA256: sha256hex("0 /root\n")},
			"/home/user/who.txt":         {Type: '0', UID: 1000, GID: 1000, SHA256: sha256hex("1000\n")},
		}},
	}
	for _, pl := range plans {
		t.Run(pl.Name, func(t *testing.T) {
			oi := layoutImages(t, filepath.Join(out, "ov", pl.Name))["linux/amd64"]
			bi := layoutImages(t, filepath.Join(out, "bake", pl.Name))["linux/amd64"]
			if oi == nil || bi == nil {
				t.Fatalf("no linux/amd64 image: ov %v, bake %v", oi != nil, bi != nil)
			}
			ofs, bfs := digestFS(t, oi), digestFS(t, bi)
			if diffs := diffFS(bfs, ofs); len(diffs) > 0 {
				t.Errorf("bake and ov build differ in %d paths:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 40)], "\n"))
			}
			w, ok := want[pl.Name]
			if !ok {
				return
			}
			for name, img := range map[string]struct {
				img v1.Image
				fs  map[string]FileInfo
			}{"ov": {oi, ofs}, "bake": {bi, bfs}} {
				if c := configOf(t, img.img).Config; c.User != w.user || c.WorkingDir != w.workdir {
					t.Errorf("%s: User %q WorkingDir %q, want %q %q", name, c.User, c.WorkingDir, w.user, w.workdir)
				}
				for path, wf := range w.files {
					f := img.fs[path]
					if f.Type != wf.Type || f.UID != wf.UID || f.GID != wf.GID || f.Link != wf.Link || (wf.SHA256 != "" && f.SHA256 != wf.SHA256) {
						t.Errorf("%s %s = %+v, want %+v", name, path, f, wf)
					}
				}
			}
		})
	}
}
