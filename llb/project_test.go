package llb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/generate"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// planProject loads the project at dir and plans every image as the build
// tests build it: a fixed version, task from the test server, base image
// users read through the test registry's mirror.
func planProject(t *testing.T, ctx context.Context, env *testenv.Env, dir string) (*spec.Project, []*plan.Image) {
	t.Helper()
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := plan.BuildContext(ctx, p, nil, plan.Options{
		CalVer: spec.CalVer(time.Date(2026, 2, 16, 14, 15, 0, 0, time.UTC)),
		Task:   plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256},
		Users:  baseuser.Resolver(baseuser.Options{Mirrors: map[string]string{"docker.io": env.Registry}, CacheDir: "-"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, plans
}

// bakeAll writes the generated Containerfiles and bake file into dir and
// returns the bake of every plan into the OCI layout out/bake/<image> (out
// must be below dir: bake writes only there).
func bakeAll(t *testing.T, dir string, p *spec.Project, plans []*plan.Image, out string) testenv.Bake {
	t.Helper()
	if err := generate.Write(dir, plans, p); err != nil {
		t.Fatal(err)
	}
	bake := testenv.Bake{Dir: dir, Files: []string{generate.BakePath}}
	for _, pl := range plans {
		bake.Targets = append(bake.Targets, pl.Name)
		bake.Set = append(bake.Set, pl.Name+".output=type=oci,tar=false,dest="+filepath.Join(out, "bake", pl.Name))
	}
	return bake
}

// runBake runs bake, failing the test with its log.
func runBake(t *testing.T, ctx context.Context, env *testenv.Env, bake testenv.Bake) {
	t.Helper()
	if log, err := env.Bake(ctx, bake); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
}
