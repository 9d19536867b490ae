package main

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overthink/ov/internal/builddir"
)

// The hostile corpus: testdata/hostile/base is a valid two-image project
// (base with a service layer, app on top of base); each test copies it and
// makes one thing hostile. Symbolic links are made by the tests, pointing
// at a directory beside the copy that must stay untouched.

// hostile copies testdata/hostile/base to a temporary project and returns
// it and an "outside" directory next to it holding one file.
func hostile(t *testing.T) (project, outside string) {
	t.Helper()
	t.Setenv("OV_OFFLINE", "1")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root := t.TempDir()
	project, outside = filepath.Join(root, "project"), filepath.Join(root, "outside")
	if err := os.CopyFS(project, os.DirFS("testdata/hostile/base")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(outside, "secret"), "SECRET=hunter2\n")
	return project, outside
}

func writeFile(t *testing.T, file, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// listing names every file under dir with its content.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameListing(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// asyncRun is an in-process ov generate running in the background: code
// and out are set when done is closed.
type asyncRun struct {
	done chan struct{}
	code int
	out  string
}

func generateAsync(project string) *asyncRun {
	r := &asyncRun{done: make(chan struct{})}
	go func() { r.code, r.out = ovIn(project, now, "generate"); close(r.done) }()
	return r
}

// Item 1: generate and build never write through a symbolic link at or
// below .build/; they refuse with exit 1 and name the link.
func TestHostileSymlinkedOutputs(t *testing.T) {
	tests := []struct {
		name string
		link string // made a link to outside
		args []string
		want string
	}{
		{"build dir", ".build", []string{"generate"}, ".build is a symbolic link"},
		{"image dir", ".build/base", []string{"generate"}, ".build/base is a symbolic link"},
		{"fragments dir", ".build/base/fragments", []string{"generate"}, ".build/base/fragments is a symbolic link"},
		{"fragments of an image without fragments", ".build/app/fragments", []string{"generate"}, ".build/app/fragments is a symbolic link"},
		{"oci dir", ".build/oci", []string{"build", "--builder", "tcp://127.0.0.1:9"}, ".build/oci is a symbolic link"},
		{"oci image dir", ".build/oci/app", []string{"build", "--builder", "tcp://127.0.0.1:9"}, ".build/oci/app is a symbolic link"},
		{"state dir", ".build/state", []string{"build", "--builder", "tcp://127.0.0.1:9"}, ".build/state is a symbolic link"},
		{"export store", ".build/blobs", []string{"build", "--builder", "tcp://127.0.0.1:9"}, ".build/blobs is a symbolic link"},
		{"export store blobs", ".build/blobs/blobs", []string{"build", "--builder", "tcp://127.0.0.1:9", "--push"}, ".build/blobs/blobs is a symbolic link"},
		{"export store encodings", ".build/blobs/encoded", []string{"build", "--builder", "tcp://127.0.0.1:9"}, ".build/blobs/encoded is a symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			project, outside := hostile(t)
			// What a stale generate would prune, in the link's target.
			writeFile(t, filepath.Join(outside, "99-old.conf"), "; "+tt.link+"/99-old.conf (generated -- do not edit)\n")
			before := listing(t, outside)
			symlink(t, outside, filepath.Join(project, tt.link))
			code, out := ovIn(project, now, tt.args...)
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, output %q; want exit 1 and %q", code, out, tt.want)
			}
			if after := listing(t, outside); !sameListing(before, after) {
				t.Errorf("outside changed: %v -> %v", before, after)
			}
		})
	}
}

// A link (or a FIFO) where a generated file goes is replaced, not followed
// (nor read: a FIFO would block).
func TestHostileGeneratedFileIsLinkOrFIFO(t *testing.T) {
	project, outside := hostile(t)
	symlink(t, filepath.Join(outside, "secret"), filepath.Join(project, ".build/base/Containerfile"))
	if err := os.MkdirAll(filepath.Join(project, ".build/app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(project, ".build/app/Containerfile"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := generateAsync(project)
	select {
	case <-run.done:
	case <-time.After(time.Minute):
		t.Fatal("generate blocked on a FIFO")
	}
	if code, out := run.code, run.out; code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "SECRET=hunter2\n" {
		t.Errorf("link target written: %q", b)
	}
	for _, f := range []string{".build/base/Containerfile", ".build/app/Containerfile"} {
		fi, err := os.Lstat(filepath.Join(project, f))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v %v, want a regular file", f, fi.Mode(), err)
		}
	}
}

// Item 4: a killed writer's temporary files are swept by the next one.
func TestHostileStaleTempFilesSwept(t *testing.T) {
	project, _ := hostile(t)
	stale := []string{".build/.docker-bake.hcl.123.tmp", ".build/base/.Containerfile.9.tmp", ".build/base/fragments/.01-svc.conf.7.tmp", ".build/state/.tmp-55", ".build/oci/.app.tmp-3/index.json"}
	for _, f := range stale {
		writeFile(t, filepath.Join(project, f), "half")
	}
	if code, out := ovIn(project, now, "generate"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, f := range append(stale, ".build/oci/.app.tmp-3") {
		if _, err := os.Lstat(filepath.Join(project, f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
}

// Item 4: a generate waits, saying so, while another ov holds the lock.
func TestHostileLockHeld(t *testing.T) {
	project, _ := hostile(t)
	l, err := builddir.Acquire(context.Background(), project, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := generateAsync(project)
	select {
	case <-run.done:
		t.Fatalf("generate ran while the lock was held: exit %d %s", run.code, run.out)
	case <-time.After(500 * time.Millisecond):
	}
	l.Unlock()
	<-run.done
	code, out := run.code, run.out
	want := "ov: waiting for another ov (pid " // this process holds it
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("exit %d, output %q; want exit 0 and %q", code, out, want)
	}
}

// Item 4: concurrent generates with different tags leave the files of one
// run, and a reader holding the shared lock always sees one run's files.
func TestHostileConcurrentGenerate(t *testing.T) {
	project, _ := hostile(t)
	// Two images on an external base with tag auto (pinned tags ignore
	// --tag): both Containerfiles fetch task.
	writeFile(t, filepath.Join(project, "images.yml"), "images:\n  base:\n    base: \"debian:12\"\n    pkg: deb\n    tag: auto\n    layers: [svc]\n  app:\n    base: \"debian:12\"\n    pkg: deb\n    tag: auto\n    layers: [tool]\n")
	// Each run's tag and task URL: the bake file carries the tag, the
	// Containerfiles the URL.
	for _, l := range []string{"svc", "tool"} {
		writeFile(t, filepath.Join(project, "layers", l, "user.yml"), "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo hi\n")
	}
	consistent := func() string {
		files := map[string]string{}
		for _, f := range []string{"docker-bake.hcl", "base/Containerfile", "app/Containerfile"} {
			b, _ := os.ReadFile(filepath.Join(project, ".build", f))
			files[f] = string(b)
		}
		for i := range 4 {
			run := strconv.Itoa(i)
			if strings.Contains(files["docker-bake.hcl"], `"app:t`+run+`"`) {
				if strings.Contains(files["base/Containerfile"], "/u"+run+"/task_linux") && strings.Contains(files["app/Containerfile"], "/u"+run+"/task_linux") {
					return ""
				}
				return "bake file of run " + run + ", Containerfiles of another"
			}
		}
		return "no run's tag in the bake file"
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var problems []string
	var mu sync.Mutex
	wg.Add(1)
	go func() { // the reader
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l, err := builddir.AcquireShared(context.Background(), project, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := os.Stat(filepath.Join(project, ".build/docker-bake.hcl")); err == nil {
				if p := consistent(); p != "" {
					mu.Lock()
					problems = append(problems, p)
					mu.Unlock()
				}
			}
			l.Unlock()
		}
	}()
	var gens sync.WaitGroup
	for i := range 4 {
		gens.Add(1)
		go func() {
			defer gens.Done()
			run := strconv.Itoa(i)
			tag := "t" + run
			_, stderr, code := ovProcess(t, "-C", project, "generate", "--tag", tag, "--task-url", "http://127.0.0.1:9/u"+run)
			if code != 0 {
				t.Errorf("generate --tag %s: exit %d: %s", tag, code, stderr)
			}
		}()
	}
	gens.Wait()
	close(stop)
	wg.Wait()
	if len(problems) > 0 {
		t.Errorf("reader saw mixed files: %v", problems[:1])
	}
	if p := consistent(); p != "" {
		t.Errorf("after the runs: %s", p)
	}
}

// Item 4: kill -9 during generate leaves nothing the next generate trips
// over: the lock is gone with the process and temporary files are swept.
func TestHostileKilledGenerate(t *testing.T) {
	project, _ := hostile(t)
	// Many images make generate take long enough to be killed mid-write.
	var y strings.Builder
	y.WriteString("images:\n")
	for i := range 300 {
		y.WriteString("  i" + strconv.Itoa(i) + ":\n    base: \"debian:12\"\n    pkg: deb\n    platforms: [linux/amd64]\n    layers: [svc, tool]\n")
	}
	writeFile(t, filepath.Join(project, "images.yml"), y.String())
	for round := 0; round < 5; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "-C", project, "generate")
		cmd.Env = append(os.Environ(), "OV_TEST_MAIN=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+round*30) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	code, out := ovIn(project, now, "generate")
	if code != 0 || strings.Contains(out, "waiting") {
		t.Fatalf("exit %d: %s", code, out)
	}
	for rel := range listing(t, filepath.Join(project, ".build")) {
		if builddir.IsTemp(filepath.Base(rel)) {
			t.Errorf("temporary file left: %s", rel)
		}
	}
}

// Item 3: ov's own directories are never pruned as a stale image's, even
// when they hold what looks like a generated Containerfile (validate
// rejects images named oci or state: spec/testdata/invalid/reserved-names).
func TestHostileOwnDirsNotPruned(t *testing.T) {
	project, _ := hostile(t)
	for _, d := range []string{"oci", "state"} {
		writeFile(t, filepath.Join(project, ".build", d, "Containerfile"), "# .build/"+d+"/Containerfile (generated -- do not edit)\n")
		writeFile(t, filepath.Join(project, ".build", d, "keep.json"), "{}")
	}
	if code, out := ovIn(project, now, "generate"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, d := range []string{"oci", "state"} {
		if _, err := os.Stat(filepath.Join(project, ".build", d, "keep.json")); err != nil {
			t.Errorf(".build/%s pruned: %v", d, err)
		}
	}
}

// Item 2: project inputs that resolve outside the project are errors
// naming the link; nothing of the linked file is printed or copied.
func TestHostileSymlinkedInputs(t *testing.T) {
	for _, rel := range []string{"templates/supervisord.header.conf", "layers/svc/layer.yml", "images.yml"} {
		t.Run(rel, func(t *testing.T) {
			project, outside := hostile(t)
			os.Remove(filepath.Join(project, rel))
			symlink(t, filepath.Join(outside, "secret"), filepath.Join(project, rel))
			for _, cmd := range []string{"validate", "generate"} {
				code, out := ovIn(project, now, cmd)
				if code != 1 || !strings.Contains(out, rel+": resolves to outside the project") || strings.Contains(out, "hunter2") {
					t.Errorf("%s: exit %d: %s", cmd, code, out)
				}
			}
			if _, err := os.Stat(filepath.Join(project, ".build")); err == nil {
				t.Errorf("generate wrote .build")
			}
		})
	}
}

// Item 8: a Containerfile line BuildKit would refuse (here 5,000 packages
// of one layer on one install line) is a user error, exit 1, naming it.
func TestHostileLongLine(t *testing.T) {
	project, _ := hostile(t)
	var pkgs []string
	for i := range 5000 {
		pkgs = append(pkgs, "package-number-"+strconv.Itoa(i))
	}
	writeFile(t, filepath.Join(project, "layers/tool/layer.yml"), "deb:\n  packages: ["+strings.Join(pkgs, ", ")+"]\n")
	code, out := ovIn(project, now, "generate")
	if code != 1 || !strings.Contains(out, "more than the 65535 BuildKit reads") {
		t.Errorf("exit %d: %.300s", code, out)
	}
}

// Item 10: user mistakes are exit 1 with a clear message, never 2.
func TestHostileUserMistakesExit1(t *testing.T) {
	project, _ := hostile(t)
	long := strings.Repeat("a", 300)
	tests := []struct {
		env  string // NAME=value, or ""
		args []string
		want string
	}{
		{"", []string{"-C", "main.go", "generate"}, "main.go is not a project directory"},
		{"", []string{"shell", "base", "--tag", "bad:tag", "-c", "true"}, `--tag: invalid tag "bad:tag"`},
		{"", []string{"start", "base", "--tag", "../x"}, `--tag: invalid tag "../x"`},
		{"", []string{"pod", "install", "base", "--tag", "a/b"}, `--tag: invalid tag "a/b"`},
		{"", []string{"pod", "update", "base", "--tag=-x"}, `--tag: invalid tag "-x"`},
		{"", []string{"inspect", long}, `unknown image "aaaaaaaaa`},
		{"", []string{"stop", long}, `image name "aaaaaaaaa`},
		{"", []string{"pod", "start", long}, `image name "aaaaaaaaa`},
		{"", []string{"pod", "uninstall", long}, `image name "aaaaaaaaa`},
		{"HOME=rel", []string{"pod", "install", "base"}, `$HOME is the relative path "rel"`},
		{"XDG_CONFIG_HOME=rel", []string{"pod", "status", "base"}, `$XDG_CONFIG_HOME is the relative path "rel"`},
		{"XDG_CONFIG_HOME=rel", []string{"shell", "base"}, `$XDG_CONFIG_HOME is the relative path "rel"`},
	}
	for _, tt := range tests {
		t.Run(tt.env+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			if k, v, ok := strings.Cut(tt.env, "="); ok {
				t.Setenv(k, v)
			}
			code, out := ovIn(project, now, tt.args...)
			if code != 1 || !strings.Contains(out, tt.want) || strings.Contains(out, long) {
				t.Errorf("exit %d, output %q; want exit 1 and %q", code, out, tt.want)
			}
		})
	}
}

// ov new layer does not write through a layers/ that links outside.
func TestHostileNewLayerThroughLink(t *testing.T) {
	project, outside := hostile(t)
	os.RemoveAll(filepath.Join(project, "layers"))
	symlink(t, outside, filepath.Join(project, "layers"))
	before := listing(t, outside)
	code, out := ovIn(project, now, "new", "layer", "x")
	if code != 1 || !strings.Contains(out, "layers: path escapes from parent (ov writes only inside the project)") {
		t.Errorf("exit %d: %s", code, out)
	}
	if after := listing(t, outside); !sameListing(before, after) {
		t.Errorf("outside changed: %v", after)
	}
}
