package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"
)

// hackRegistry is the registry address hack/buildkitd.toml is written for.
const hackRegistry = "127.0.0.1:5000"

// serveRegistry starts the in-process loopback registry (blobs on disk under
// Dir, so big test images cost no memory).
func (e *Env) serveRegistry() (string, error) { return e.serveRegistryAt("127.0.0.1:0") }

func (e *Env) serveRegistryAt(addr string) (string, error) {
	blobs := filepath.Join(e.Dir, "registry")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return "", err
	}
	h := registry.New(
		registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)),
	)
	return e.serveAt(h, addr)
}

// DeriveBuildkitdConfig returns hack/buildkitd.toml with the loopback
// registry address replaced by reg and ghcr.io mirrored to reg as well, so
// plan.DefaultPixiImage resolves to the fake pixi image (FakePixi), after
// checking that buildkitd can parse the result.
func DeriveBuildkitdConfig(hackConfig []byte, reg string) ([]byte, error) {
	if !strings.Contains(string(hackConfig), hackRegistry) {
		return nil, fmt.Errorf("buildkitd.toml: no %s registry to substitute", hackRegistry)
	}
	out := []byte(strings.ReplaceAll(string(hackConfig), hackRegistry, reg))
	cfg, err := config.Load(strings.NewReader(string(out)))
	if err != nil {
		return nil, fmt.Errorf("buildkitd.toml: %w", err)
	}
	if _, ok := cfg.Registries["ghcr.io"]; !ok {
		out = fmt.Appendf(out, "\n# internal/testenv: the fake pixi image stands in for ghcr.io/prefix-dev/pixi.\n"+
			"[registry.\"ghcr.io\"]\n  mirrors = [%q]\n", reg)
		if cfg, err = config.Load(strings.NewReader(string(out))); err != nil {
			return nil, fmt.Errorf("buildkitd.toml with the ghcr.io mirror: %w", err)
		}
	}
	for _, host := range []string{"docker.io", "ghcr.io"} {
		if m := cfg.Registries[host].Mirrors; len(m) != 1 || m[0] != reg {
			return nil, fmt.Errorf("buildkitd.toml: %s mirrors = %v, want [%s]", host, m, reg)
		}
	}
	return out, nil
}

// findTool finds a tool built by `task setup` in bin/, else on PATH.
func (e *Env) findTool(name string) (string, error) {
	if p := filepath.Join(e.RepoRoot, "bin", name); fileExists(p) {
		return p, nil
	}
	for _, kv := range withSbinPath(os.Environ()) {
		if path, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range filepath.SplitList(path) {
				if p := filepath.Join(d, name); fileExists(p) {
					return p, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%s not found in %s/bin or PATH: run `go tool task setup`", name, e.RepoRoot)
}

// startBuildkitd runs buildkitd on a private socket, root and config and
// waits until it lists its workers.
func (e *Env) startBuildkitd(ctx context.Context) error {
	bin, err := e.findTool("buildkitd")
	if err != nil {
		return err
	}
	hack, err := os.ReadFile(filepath.Join(e.RepoRoot, "hack", "buildkitd.toml"))
	if err != nil {
		return err
	}
	cfg, err := DeriveBuildkitdConfig(hack, e.Registry)
	if err != nil {
		return fmt.Errorf("hack/%w", err)
	}
	dir := filepath.Join(e.Dir, "buildkit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	e.BuildkitConfig = filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(e.BuildkitConfig, cfg, 0o644); err != nil {
		return err
	}
	sock := filepath.Join(dir, "buildkitd.sock")
	e.BuildkitAddr = "unix://" + sock
	d, err := startDaemon("buildkitd", filepath.Join(dir, "buildkitd.log"), nil, bin,
		"--config", e.BuildkitConfig,
		"--root", filepath.Join(dir, "root"),
		"--addr", e.BuildkitAddr,
	)
	if err != nil {
		return err
	}
	e.onClose("buildkitd", func() error {
		d.stop(15 * time.Second)
		return unmountUnder(dir)
	})
	return waitReady(ctx, d, 60*time.Second, func(ctx context.Context) error {
		c, err := e.NewClient(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		ws, err := c.ListWorkers(ctx)
		if err == nil && len(ws) == 0 {
			err = errors.New("no workers")
		}
		return err
	})
}

// NewClient connects a buildkit client to the Env's daemon.
func (e *Env) NewClient(ctx context.Context) (*client.Client, error) {
	c, err := client.New(ctx, e.BuildkitAddr)
	if err != nil {
		return nil, fmt.Errorf("buildkitd %s: %w", e.BuildkitAddr, err)
	}
	return c, nil
}

// waitReady polls probe until it succeeds, the daemon dies, or timeout.
func waitReady(ctx context.Context, d *daemon, timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if err := d.exited(); err != nil {
			return err
		}
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := probe(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v\n%s", d.name, timeout, err, tail(d.log, 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
