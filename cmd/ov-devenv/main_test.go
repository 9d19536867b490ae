package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/overthink/ov/internal/testenv"
)

// The command sees a live buildkitd socket, the buildx builder and the task
// archive checksums; its exit code is passed through.
func TestRunPassesEnvironmentAndExitCode(t *testing.T) {
	testenv.SkipShort(t, "starts buildkitd, a registry and dockerd")
	ok := `test -S "${BUILDKIT_HOST#unix://}" && test -n "$OV_TASK_SHA256" && test -n "$BUILDX_CONFIG" && test -S "${DOCKER_HOST#unix://}"`
	if code := run(true, []string{"sh", "-c", ok}); code != 0 {
		t.Errorf("environment check exited %d", code)
	}
	if code := run(false, []string{"sh", "-c", "exit 3"}); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
}

// What ov-devenv prints is what ov reads: sourced by bash as a user would
// (`. <(ov-devenv)`), into an environment without other ov, BuildKit,
// buildx or docker variables, and with the internet out of ov's reach (a
// dead proxy), it lets ov build examples/hello on the environment's
// buildkitd.
func TestSourcedExportsBuildHello(t *testing.T) {
	testenv.SkipShort(t, "starts buildkitd, a registry and dockerd")
	ctx, cancel := context.WithTimeout(context.Background(), testenv.StartTimeout)
	defer cancel()
	bin := t.TempDir()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".", "../ov").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	project := t.TempDir()
	if err := os.CopyFS(project, os.DirFS("../../examples/hello")); err != nil {
		t.Fatal(err)
	}
	script := `. <("$BIN/ov-devenv") && devenv=$! && trap 'kill -INT $devenv; wait $devenv' EXIT &&
env | grep -E '^(OV|BUILDKIT|BUILDX|DOCKER)_' | cut -d= -f1 | sort | tr '\n' ' ' && echo &&
HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 "$BIN/ov" -C "$PROJECT" build --progress plain`
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(k, "OV_") || strings.HasPrefix(k, "BUILDKIT_") || strings.HasPrefix(k, "BUILDX_") ||
			strings.HasPrefix(k, "DOCKER_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY")
	})
	cmd.Env = append(cmd.Env, "BIN="+bin, "PROJECT="+project)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if want := "BUILDKIT_HOST BUILDX_BUILDER BUILDX_CONFIG OV_REGISTRY_MIRRORS OV_TASK_SHA256 OV_TASK_URL \n"; stdout.String() != want {
		t.Errorf("exported %q, want %q", stdout.String(), want)
	}
	if err != nil || !strings.Contains(stderr.String(), "built hello-child (linux/amd64) -> oci:"+filepath.Join(project, ".build", "oci", "hello-child")) {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
}
