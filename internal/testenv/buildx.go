package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// BuilderName is the buildx builder every Env registers (remote driver on
// its buildkitd), in its own BUILDX_CONFIG.
const BuilderName = "ovtest"

// BuildxEnv is the environment that points buildx (standalone or as
// `docker buildx`) at the Env's builder: an isolated BUILDX_CONFIG with
// BUILDX_BUILDER selected. The builder is created on first use.
func (e *Env) BuildxEnv(ctx context.Context) ([]string, error) {
	e.buildxOnce.Do(func() { e.buildxErr = e.createBuilder(ctx) })
	if e.buildxErr != nil {
		return nil, e.buildxErr
	}
	return []string{
		"BUILDX_CONFIG=" + filepath.Join(e.Dir, "buildx"),
		"BUILDX_BUILDER=" + BuilderName,
	}, nil
}

func (e *Env) createBuilder(ctx context.Context) error {
	bin, err := e.findTool("buildx")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(e.Dir, "buildx"), 0o700); err != nil {
		return err
	}
	_, err = run(ctx, e.Dir, []string{"BUILDX_CONFIG=" + filepath.Join(e.Dir, "buildx")},
		bin, "create", "--name", BuilderName, "--driver", "remote", e.BuildkitAddr)
	return err
}

// Buildx runs `buildx args...` in dir against the Env's builder and returns
// its combined output; on failure the error carries the output too.
func (e *Env) Buildx(ctx context.Context, dir string, args ...string) ([]byte, error) {
	env, err := e.BuildxEnv(ctx)
	if err != nil {
		return nil, err
	}
	bin, err := e.findTool("buildx")
	if err != nil {
		return nil, err
	}
	return run(ctx, dir, env, bin, args...)
}

// Bake describes one `buildx bake` run.
type Bake struct {
	Dir     string   // working directory (bake's context ".")
	Files   []string // -f files; bake's defaults when empty
	Targets []string // targets or groups; "default" when empty
	Set     []string // --set overrides, e.g. "*.output=type=oci,dest=/tmp/x.tar"
}

// Bake runs `buildx bake` for b through the Env's remote builder.
func (e *Env) Bake(ctx context.Context, b Bake) ([]byte, error) {
	args := []string{"bake", "--progress=plain"}
	for _, f := range b.Files {
		args = append(args, "-f", f)
	}
	for _, s := range b.Set {
		args = append(args, "--set", s)
	}
	args = append(args, b.Targets...)
	out, err := e.Buildx(ctx, b.Dir, args...)
	if err != nil {
		return out, fmt.Errorf("bake: %w", err)
	}
	return out, nil
}
