package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overthink/ov/internal/testenv"
)

// family is the test project generated and baked once per test binary;
// every bake test reads its outputs.
type family struct {
	dir  string // the project copy, holding .build/
	out  string // OCI layouts: out/bake/<image>
	took time.Duration
}

var (
	bakeOnce sync.Once
	baked    *family
	bakeErr  string
)

// bakeFamily generates the e2e project with the ov binary and bakes every
// target into an OCI layout.
func bakeFamily(t *testing.T) *family {
	t.Helper()
	env := testenv.Get(t)
	bakeOnce.Do(func() {
		f := &family{}
		var err error
		if f.dir, err = os.MkdirTemp(env.Dir, "family-"); err != nil {
			bakeErr = err.Error()
			return
		}
		if err := copyDir(filepath.Join(env.RepoRoot, "e2e", "testdata", "family"), f.dir); err != nil {
			bakeErr = err.Error()
			return
		}
		if _, err := runOV(env, f.dir, "generate", "--tag", "e2e"); err != nil {
			bakeErr = err.Error()
			return
		}
		f.out = filepath.Join(f.dir, ".out") // bake writes only below its context
		bake := testenv.Bake{Dir: f.dir, Files: []string{".build/docker-bake.hcl"}}
		for _, img := range []string{"deb-parent", "deb-child", "bb-multi", "user-base", "runner", "bootc-link"} {
			bake.Targets = append(bake.Targets, img)
			bake.Set = append(bake.Set, img+".output=type=oci,tar=false,dest="+filepath.Join(f.out, "bake", img))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		start := time.Now()
		if log, err := env.Bake(ctx, bake); err != nil {
			bakeErr = err.Error() + "\n" + string(log)
			return
		}
		f.took = time.Since(start)
		t.Logf("bake of the e2e family: %s", f.took.Round(time.Millisecond))
		baked = f
	})
	if baked == nil {
		t.Fatalf("baking the e2e family failed: %s", bakeErr)
	}
	return baked
}

func snapshot(t *testing.T, layout, platform string) *testenv.Snapshot {
	t.Helper()
	s, err := testenv.ReadOCI(layout, platform)
	if err != nil {
		t.Fatalf("%s: %v", layout, err)
	}
	return s
}

func TestBakeParent(t *testing.T) {
	f := bakeFamily(t)
	s := snapshot(t, filepath.Join(f.out, "bake", "deb-parent"), "linux/amd64")
	home := "/home/user"
	checkConfig(t, s, "1000", home,
		[]string{"NPM_CONFIG_PREFIX=" + home + "/.npm-global", "npm_config_cache=" + home + "/.cache/npm", `OV_E2E_GREETING=hello "quoted" ` + home},
		home+"/.npm-global/bin:"+home+"/.cargo/bin:",
		[]string{"8080/tcp", "9090/tcp"})

	checkFile(t, s, "/usr/local/bin/task", 0, 0, -1, "")
	checkFile(t, s, "/usr/bin/node", 0, 0, -1, "")
	checkFile(t, s, "/usr/bin/cargo", 0, 0, -1, "")
	checkFile(t, s, "/opt/marker/root-marker.txt", 0, 0, 0o640, "installed by root.yml\n")
	checkFile(t, s, home+"/.config/marker/user-marker.txt", 1000, 1000, -1, "installed by user.yml as 1000\n")
	checkFile(t, s, "/srv/web/index.html", 0, 0, -1, "ok\n")
	checkFile(t, s, home+"/.cargo/bin/hello-rust", 1000, 1000, -1, "")
	// npm installed a real copy, not a symlink into the step's /ctx mount.
	link := s.Files[home+"/.npm-global/bin/hello-node"]
	if link.Type != '2' || strings.Contains(link.Linkname, "/ctx") {
		t.Errorf("hello-node bin: type %c -> %q, want a symlink into the installed package", link.Type, link.Linkname)
	}
	pkg := s.Files[home+"/.npm-global/lib/node_modules/hello-node"]
	if pkg.Type != '5' {
		t.Errorf("hello-node package dir: type %c %q, want a real directory (not a link to /ctx)", pkg.Type, pkg.Linkname)
	}
	checkFile(t, s, home+"/.npm-global/lib/node_modules/hello-node/index.js", 1000, 1000, -1, "")
	// Parents of the user's cache mounts belong to the user (the cargo trap).
	checkFile(t, s, home+"/.cargo", 1000, 1000, -1, "")
	checkFile(t, s, home+"/.cache", 1000, 1000, -1, "")

	conf := s.Files["/etc/supervisord.conf"]
	if conf.Type != '0' {
		t.Fatalf("/etc/supervisord.conf missing")
	}
	body := fileContent(t, filepath.Join(f.out, "bake", "deb-parent"), "linux/amd64", "/etc/supervisord.conf")
	for _, want := range []string{"[supervisord]", "[program:web]", "command=sleep infinity"} {
		if !strings.Contains(body, want) {
			t.Errorf("/etc/supervisord.conf lacks %q:\n%s", want, body)
		}
	}
	if i, j := strings.Index(body, "[supervisord]"), strings.Index(body, "[program:web]"); i > j {
		t.Errorf("/etc/supervisord.conf: header after the fragments:\n%s", body)
	}
}

func TestBakeChild(t *testing.T) {
	f := bakeFamily(t)
	cf, err := os.ReadFile(filepath.Join(f.dir, ".build", "deb-child", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, parentLayer := range []string{"marker", "hello-node", "hello-rust", "web", "devtools"} {
		if strings.Contains(string(cf), "# Layer: "+parentLayer+"\n") {
			t.Errorf("child Containerfile repeats parent layer %q", parentLayer)
		}
	}
	s := snapshot(t, filepath.Join(f.out, "bake", "deb-child"), "linux/amd64")
	home := "/home/user"
	checkConfig(t, s, "1000", home,
		[]string{"OV_E2E_CHILD=child", "NPM_CONFIG_PREFIX=" + home + "/.npm-global"},
		"/opt/child/bin:"+home+"/.npm-global/bin:",
		[]string{"7070/tcp", "8080/tcp", "9090/tcp"})
	checkFile(t, s, "/opt/child/bin/child-tool", 0, 0, 0o755, "#!/bin/sh\necho child tool\n")
	checkFile(t, s, "/opt/marker/root-marker.txt", 0, 0, 0o640, "installed by root.yml\n") // from the parent
	// Volume mount points exist, the user's (an engine makes a new named
	// volume from them), with every directory below home.
	for _, dir := range []string{home + "/.local", home + "/.local/share", home + "/.local/share/child-tool", home + "/.local/share/child-tool/data", "/srv/child-data"} {
		checkFile(t, s, dir, 1000, 1000, -1, "")
	}
	checkFile(t, s, "/srv", 0, 0, -1, "")
	// npm-tools' package.json lists semver: installed globally, its bin in
	// the npm prefix's bin (not nested under an npm-tools package).
	checkFile(t, s, home+"/.npm-global/lib/node_modules/semver/package.json", 1000, 1000, -1, "")
	if bin := s.Files[home+"/.npm-global/bin/semver"]; bin.Type != '2' {
		t.Errorf("semver bin: type %c, want a symlink in the npm prefix's bin", bin.Type)
	}
	if _, ok := s.Files[home+"/.npm-global/lib/node_modules/npm-tools"]; ok {
		t.Errorf("the tool list was installed as a package")
	}
}

// TestBakeRunner: a child with a user of its own (root, as CI runners are)
// runs its steps as root in /root and ends as USER 0.
func TestBakeRunner(t *testing.T) {
	f := bakeFamily(t)
	s := snapshot(t, filepath.Join(f.out, "bake", "runner"), "linux/amd64")
	checkConfig(t, s, "0", "/root", nil, "", nil)
	checkFile(t, s, "/root/runner/installed.txt", 0, 0, -1, "runner as 0 in /root\n")
	checkFile(t, s, "/home/user/.config/marker/user-marker.txt", 1000, 1000, -1, "installed by user.yml as 1000\n") // the parent's
}

// TestBakeBootcLink: on a base whose /usr/local links to a missing
// ../var/usrlocal, the bootstrap creates the link's target; the fake bootc
// lint passed, so it ran as root; the final user stays 1000.
func TestBakeBootcLink(t *testing.T) {
	f := bakeFamily(t)
	s := snapshot(t, filepath.Join(f.out, "bake", "bootc-link"), "linux/amd64")
	checkConfig(t, s, "1000", "/home/user", nil, "", nil)
	if l := s.Files["/usr/local"]; l.Type != '2' || l.Linkname != "../var/usrlocal" {
		t.Errorf("/usr/local: type %c -> %q, want the base's link to ../var/usrlocal", l.Type, l.Linkname)
	}
	checkFile(t, s, "/var/usrlocal/bin/task", 0, 0, -1, "")
	checkFile(t, s, "/arch.txt", 0, 0, -1, "x86_64\n")
}

func TestBakeBusyboxMultiArch(t *testing.T) {
	f := bakeFamily(t)
	layout := filepath.Join(f.out, "bake", "bb-multi")
	for platform, machine := range map[string]string{"linux/amd64": "x86_64\n", "linux/arm64": "aarch64\n"} {
		s := snapshot(t, layout, platform)
		if got := s.Platform.OS + "/" + s.Platform.Architecture; got != platform {
			t.Errorf("%s: image platform %s", platform, got)
		}
		checkFile(t, s, "/arch.txt", 0, 0, -1, machine)
		checkFile(t, s, "/usr/local/bin/task", 0, 0, -1, "")
		if s.Config.User != "1000" {
			t.Errorf("%s: User %q, want 1000", platform, s.Config.User)
		}
	}
}

func TestBakeUserFromBase(t *testing.T) {
	f := bakeFamily(t)
	s := snapshot(t, filepath.Join(f.out, "bake", "user-base"), "linux/amd64")
	checkConfig(t, s, "1000", "/home/ubuntu", nil, "", nil)
	checkFile(t, s, "/home/ubuntu/whoami.txt", 1000, 1000, -1, "ubuntu\n/home/ubuntu\n")
	if _, ok := s.Files["/home/user"]; ok {
		t.Errorf("/home/user exists: the bootstrap created the configured user although the base has uid 1000")
	}
}

// TestBakeRun loads the baked parent into dockerd and runs the commands its
// layers installed.
func TestBakeRun(t *testing.T) {
	f := bakeFamily(t)
	env := testenv.Get(t)
	ctx, host := startDocker(t, env, 10*time.Minute)
	child := "ov.test/deb-child:e2e"
	dockerLoad(t, ctx, host, filepath.Join(f.out, "bake", "deb-child"), child)
	// A CLI that package.json listed runs by name as the image's user.
	if out, err := exec.CommandContext(ctx, "docker", "-H", host, "run", "--rm", child, "bash", "-c", "id -u; semver -r '^7' 7.1.0 8.0.0").CombinedOutput(); err != nil || string(out) != "1000\n7.1.0\n" {
		t.Errorf("docker run semver: %v: %q, want 1000 and 7.1.0", err, out)
	}
	ref := "ov.test/deb-parent:e2e"
	dockerLoad(t, ctx, host, filepath.Join(f.out, "bake", "deb-parent"), ref)
	runsIn(t, ctx, host, ref, map[string]string{
		"hello-node":              "hello from node v",
		"hello-rust":              "hello from rust",
		"id -u; pwd":              "1000\n/home/user",
		`echo "$OV_E2E_GREETING"`: `hello "quoted" /home/user`,
		"task --version >/dev/null; echo task ok": "task ok",
	})
}

// checkConfig asserts User, WorkingDir, env entries, the PATH prefix and
// exposed ports (nil skips a check).
func checkConfig(t *testing.T, s *testenv.Snapshot, user, workdir string, env []string, pathPrefix string, ports []string) {
	t.Helper()
	c := s.Config
	if c.User != user {
		t.Errorf("User %q, want %q", c.User, user)
	}
	if c.WorkingDir != workdir {
		t.Errorf("WorkingDir %q, want %q", c.WorkingDir, workdir)
	}
	for _, e := range env {
		if !slices.Contains(c.Env, e) {
			t.Errorf("Env lacks %q: %q", e, c.Env)
		}
	}
	if pathPrefix != "" {
		var path string
		for _, e := range c.Env {
			if v, ok := strings.CutPrefix(e, "PATH="); ok {
				path = v
			}
		}
		if !strings.HasPrefix(path, pathPrefix) || !strings.Contains(path, "/usr/bin") {
			t.Errorf("PATH %q, want prefix %q followed by the base's PATH", path, pathPrefix)
		}
	}
	if ports != nil {
		var got []string
		for p := range c.ExposedPorts {
			got = append(got, p)
		}
		slices.Sort(got)
		if !slices.Equal(got, ports) {
			t.Errorf("ExposedPorts %q, want %q", got, ports)
		}
	}
}

// checkFile asserts a path exists with owner, mode (-1: any) and content
// ("" : any).
func checkFile(t *testing.T, s *testenv.Snapshot, path string, uid, gid int, mode int64, content string) {
	t.Helper()
	f, ok := s.Files[path]
	if !ok {
		t.Errorf("%s: missing", path)
		return
	}
	if f.UID != uid || f.GID != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", path, f.UID, f.GID, uid, gid)
	}
	if mode >= 0 && f.Mode&0o7777 != mode {
		t.Errorf("%s: mode %o, want %o", path, f.Mode&0o7777, mode)
	}
	if content != "" && f.SHA256 != sha(content) {
		t.Errorf("%s: content differs from %q", path, content)
	}
}
