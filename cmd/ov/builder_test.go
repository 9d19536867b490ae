package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/overthink/ov/builder"
)

// TestBuilderCommands drives `ov builder start|status|stop` against a real
// managed buildkitd, with no builder configured.
func TestBuilderCommands(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("BUILDKIT_HOST", "")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(tmp, "cache"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "config"))
	old := builder.DefaultAddr
	builder.DefaultAddr = "unix://" + filepath.Join(tmp, "none.sock")
	t.Cleanup(func() { builder.DefaultAddr = old })

	proj := filepath.Join(tmp, "project")
	if err := os.MkdirAll(filepath.Join(proj, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(buildkitdForTest(t), filepath.Join(proj, "bin", "buildkitd")); err != nil {
		t.Fatal(err)
	}

	ov := func(args ...string) (code int, stdout, stderr string) {
		var o, e bytes.Buffer
		code = run(append([]string{"-C", proj}, args...), &o, &e, time.Now())
		return code, o.String(), e.String()
	}
	t.Cleanup(func() { ov("builder", "stop") })

	if code, out, errs := ov("builder", "status"); code != 0 || !strings.Contains(out, "not running") {
		t.Fatalf("status before start: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs := ov("builder", "start")
	if code != 0 || !strings.Contains(errs, "managed buildkitd started: pid ") {
		t.Fatalf("start: exit %d: %s", code, errs)
	}
	pid := regexp.MustCompile(`pid (\d+)`).FindStringSubmatch(errs)[1]

	code, out, errs := ov("builder", "status")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	for _, want := range []string{"pid        " + pid, "config     buildkitd defaults", "version    ", "worker     ", "linux/amd64", "linux/arm64"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	if code, _, errs := ov("builder", "start"); code != 0 || !strings.Contains(errs, "already running: pid "+pid) {
		t.Fatalf("second start: exit %d: %s", code, errs)
	}
	if code, _, errs := ov("builder", "stop"); code != 0 || !strings.Contains(errs, "stopped (pid "+pid+")") {
		t.Fatalf("stop: exit %d: %s", code, errs)
	}
	if code, out, _ := ov("builder", "status"); code != 0 || !strings.Contains(out, "not running") {
		t.Fatalf("status after stop: exit %d\n%s", code, out)
	}
	if code, _, errs := ov("builder", "stop"); code != 0 || !strings.Contains(errs, "not running") {
		t.Fatalf("stop when stopped: exit %d: %s", code, errs)
	}
}

func TestBuilderUnreachableExit1(t *testing.T) {
	var o, e bytes.Buffer
	code := run([]string{"builder", "status", "--builder", "unix://" + filepath.Join(t.TempDir(), "x.sock")}, &o, &e, time.Now())
	if code != 1 || !strings.Contains(e.String(), "cannot reach buildkitd at unix://") {
		t.Fatalf("exit %d: %s", code, e.String())
	}
}

// buildkitdForTest is the project's bin/buildkitd (`go tool task setup`),
// else one on PATH.
func buildkitdForTest(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", "..", "bin", "buildkitd")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("buildkitd"); err == nil {
		return p
	}
	t.Fatal("buildkitd not found in bin/ or PATH: run `go tool task setup`")
	return ""
}
