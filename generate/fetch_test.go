package generate_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/overthink/ov/generate"
	"github.com/overthink/ov/installfile"
	"github.com/overthink/ov/internal/hostdeps"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// taskArchive is a go-task-like release archive: task at the top level.
func taskArchive(t *testing.T, arch string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{"task": "#!/bin/sh\necho task " + arch + "\n", "LICENSE": "MIT\n"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Uid: 1234, Gid: 1234}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fetchScript renders the bootstrap's task RUN for a task server and
// returns its shell with the archive and install paths moved under dir.
func fetchScript(t *testing.T, src plan.TaskSource, dir string) string {
	t.Helper()
	o := testOptions()
	o.Task = src
	p := project(t, "rpm", &spec.Layer{Name: "x", Installs: installfile.Files("root.yml")})
	plans, err := plan.Build(p, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := generate.Containerfile(plans[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range finalStage(t, cf).Commands {
		if rc, ok := c.(*instructions.RunCommand); ok && strings.Contains(rc.CmdLine[0], "task_linux_") {
			s := strings.ReplaceAll(rc.CmdLine[0], plan.TaskArchive, filepath.Join(dir, "task.tar.gz"))
			return strings.ReplaceAll(s, "/usr/local/bin", filepath.Join(dir, "bin"))
		}
	}
	t.Fatalf("no task download in\n%s", cf)
	return ""
}

// busyboxPath makes a PATH with busybox applets and no curl, like a busybox
// base image.
func busyboxPath(t *testing.T) string {
	t.Helper()
	bb := hostdeps.Need(t, "busybox")
	dir := t.TempDir()
	for _, a := range []string{"sh", "tar", "wget", "sha256sum", "cut", "rm", "uname", "gzip"} {
		if err := os.Symlink(bb, filepath.Join(dir, a)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFetchTaskRuns(t *testing.T) {
	archives := map[string][]byte{"amd64": taskArchive(t, "amd64"), "arm64": taskArchive(t, "arm64")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for arch, b := range archives {
			if r.URL.Path == "/dl/task_linux_"+arch+".tar.gz" {
				w.Write(b)
				return
			}
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	pinned := map[string]string{"amd64": sum(archives["amd64"]), "arm64": sum(archives["arm64"])}
	wrong := map[string]string{"amd64": strings.Repeat("0", 64), "arm64": strings.Repeat("0", 64)}

	cases := []struct {
		name    string
		sha     map[string]string
		busybox bool
		fail    string
	}{
		{"curl, unpinned", nil, false, ""},
		{"curl, pinned", pinned, false, ""},
		{"wget without curl, pinned", pinned, true, ""},
		{"wrong checksum", wrong, false, "sha256 mismatch"},
		{"wrong checksum under busybox", wrong, true, "sha256 mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			script := fetchScript(t, plan.TaskSource{URL: srv.URL + "/dl/", SHA256: c.sha}, dir)
			cmd := exec.Command("/bin/sh", "-c", script)
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			if c.busybox {
				bb := busyboxPath(t)
				cmd = exec.Command(filepath.Join(bb, "sh"), "-c", script)
				cmd.Env = []string{"PATH=" + bb}
			}
			out, err := cmd.CombinedOutput()
			if c.fail != "" {
				if err == nil || !strings.Contains(string(out), c.fail) {
					t.Fatalf("got %v, output %q; want failure %q", err, out, c.fail)
				}
				if _, err := os.Stat(filepath.Join(dir, "bin", "task")); err == nil {
					t.Error("task installed despite the failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s\nscript: %s", err, out, script)
			}
			got, err := exec.Command(filepath.Join(dir, "bin", "task")).Output()
			if err != nil || !strings.HasPrefix(string(got), "task ") {
				t.Fatalf("installed task: %q, %v", got, err)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "bin"))
			if len(entries) != 1 {
				t.Errorf("bin has %d entries, want only task", len(entries))
			}
			if _, err := os.Stat(filepath.Join(dir, "task.tar.gz")); err == nil {
				t.Error("the archive was left behind")
			}
		})
	}
}
