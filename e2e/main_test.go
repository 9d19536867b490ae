// Package e2e builds the family in testdata/ the two ways users build it:
// `ov generate` + `docker buildx bake`, and `ov build`, against the real
// buildkitd, registry and dockerd that internal/testenv starts, then reads
// and runs the results.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overthink/ov/internal/testenv"
)

func TestMain(m *testing.M) {
	code := testenv.Run(m)
	if ovBinDir != "" {
		os.RemoveAll(ovBinDir)
	}
	os.Exit(code)
}

// ovBinDir holds ovBin's binary, removed when the tests end.
var ovBinDir string

// ovBin is the ov binary under test, built once per test binary.
var ovBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ov-e2e-bin-")
	if err != nil {
		return "", err
	}
	ovBinDir = dir
	bin := filepath.Join(dir, "ov")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ov")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &cmdError{cmd: "go build ./cmd/ov", out: out, err: err}
	}
	return bin, nil
})

// ov runs the ov binary in dir with the environment pointed at env.
func ov(t testing.TB, env *testenv.Env, dir string, args ...string) string {
	t.Helper()
	out, err := runOV(env, dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runOV is ov without a test: its error carries the output.
func runOV(env *testenv.Env, dir string, args ...string) (string, error) {
	return runOVEnv(env, nil, dir, args...)
}

// runOVEnv is runOV with extra environment variables (DOCKER_HOST=...).
func runOVEnv(env *testenv.Env, extra []string, dir string, args ...string) (string, error) {
	bin, err := ovBin()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(),
		"BUILDKIT_HOST="+env.BuildkitAddr,
		"OV_REGISTRY_MIRRORS=docker.io="+env.Registry,
		"OV_TASK_URL="+env.TaskBaseURL,
		"OV_TASK_SHA256=amd64="+env.TaskSHA256["amd64"]+",arm64="+env.TaskSHA256["arm64"],
	)
	cmd.Env = append(cmd.Env, extra...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), &cmdError{cmd: "ov " + strings.Join(args, " "), out: out, err: err}
	}
	return string(out), nil
}

type cmdError struct {
	cmd string
	out []byte
	err error
}

func (e *cmdError) Error() string { return e.cmd + ": " + e.err.Error() + "\n" + string(e.out) }

// copyDir copies the test project src to dst (regular files, dirs, modes).
func copyDir(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
}
