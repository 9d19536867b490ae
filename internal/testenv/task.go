package testenv

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/overthink/ov/baseuser"
)

const taskModule = "github.com/go-task/task/v3"

// TaskArches are the architectures task archives are served for.
var TaskArches = []string{"amd64", "arm64"}

// TaskArchive is the go-task release file name for arch.
func TaskArchive(arch string) string { return "task_linux_" + arch + ".tar.gz" }

// TaskURL is the download URL of the task archive for arch.
func (e *Env) TaskURL(arch string) string { return e.TaskBaseURL + "/" + TaskArchive(arch) }

// OvEnv is the environment ov reads to build on the Env's services: base
// lookups go to the registry (OV_REGISTRY_MIRRORS) and the bootstrap fetches
// the task archives served here, pinned (OV_TASK_URL, OV_TASK_SHA256).
// BUILDKIT_HOST is the caller's to add: the demo uses ov's own buildkitd.
func (e *Env) OvEnv() []string {
	var sums []string
	for _, arch := range TaskArches {
		if s := e.TaskSHA256[arch]; s != "" {
			sums = append(sums, arch+"="+s)
		}
	}
	return []string{
		baseuser.MirrorsEnv + "=docker.io=" + e.Registry,
		"OV_TASK_URL=" + e.TaskBaseURL,
		"OV_TASK_SHA256=" + strings.Join(sums, ","),
	}
}

// serveTask cross-builds task (the go.mod tool version) for each arch, packs
// it like a go-task release, and serves the archives over loopback HTTP.
func (e *Env) serveTask(ctx context.Context, cache string) error {
	out, err := run(ctx, e.RepoRoot, nil, "go", "list", "-m", "-f", "{{.Version}}", taskModule)
	if err != nil {
		return fmt.Errorf("task version: %w", err)
	}
	e.TaskVersion = strings.TrimSpace(string(out))
	gover, err := run(ctx, e.RepoRoot, nil, "go", "env", "GOVERSION")
	if err != nil {
		return err
	}
	key := "task-" + e.TaskVersion + "-" + strings.TrimSpace(string(gover))
	dir, err := cached(cache, key, func(out, scratch string) error {
		os.Stderr.WriteString("testenv: cross-building task " + e.TaskVersion + " for " + strings.Join(TaskArches, ", ") + " (cold cache)\n")
		return e.buildTaskArchives(ctx, out, scratch)
	})
	if err != nil {
		return err
	}
	e.TaskSHA256 = map[string]string{}
	var sums strings.Builder
	for _, arch := range TaskArches {
		sum, err := sha256File(filepath.Join(dir, TaskArchive(arch)))
		if err != nil {
			return err
		}
		e.TaskSHA256[arch] = sum
		fmt.Fprintf(&sums, "%s  %s\n", sum, TaskArchive(arch))
	}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(dir)))
	mux.HandleFunc("/task_checksums.txt", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, sums.String())
	})
	addr, err := e.serve(mux)
	if err != nil {
		return err
	}
	e.TaskBaseURL = "http://" + addr
	return nil
}

func (e *Env) buildTaskArchives(ctx context.Context, dir, scratch string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for _, arch := range TaskArches {
		bin := filepath.Join(scratch, "task-"+arch)
		if _, err := run(ctx, e.RepoRoot, []string{"GOOS=linux", "GOARCH=" + arch, "CGO_ENABLED=0"},
			"go", "build", "-ldflags=-s -w", "-o", bin, taskModule+"/cmd/task"); err != nil {
			return err
		}
		body, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		err = writeGzipFile(filepath.Join(dir, TaskArchive(arch)), func(w io.Writer) error {
			return writeEntries(w, []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "task", Mode: 0o755}, body: body}})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
