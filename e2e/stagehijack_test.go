package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/overthink/ov/internal/testenv"
)

// TestBakeNamedContextReplacesStage shows with a real buildx bake why ov
// refuses a base image named like a stage of its child's Containerfile
// (spec: bake-stage-hijack, generate.Bake): the named context bake passes
// for the parent replaces the child's stage of that name, so the child
// gets the parent's files where its layer's belong. If BuildKit ever stops
// doing so, this test says the rule can go.
func TestBakeNamedContextReplacesStage(t *testing.T) {
	env := testenv.Get(t)
	dir, err := os.MkdirTemp(env.Dir, "hijack-")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"parent.txt":         "parent\n",
		"child.txt":          "child\n",
		"base/Containerfile": "FROM scratch\nCOPY parent.txt /marker\n",
		"app/Containerfile":  "FROM scratch AS base\nCOPY child.txt /marker\n\nFROM scratch\nCOPY --from=base /marker /marker\n",
		"docker-bake.hcl": `target "base" {
  context    = "."
  dockerfile = "base/Containerfile"
}
target "app" {
  context    = "."
  dockerfile = "app/Containerfile"
  contexts   = { "base" = "target:base" }
}
`,
	}
	for rel, s := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, ".out")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if log, err := env.Bake(ctx, testenv.Bake{Dir: dir, Files: []string{"docker-bake.hcl"}, Targets: []string{"app"},
		Set: []string{"app.output=type=local,dest=" + out}}); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	got, err := os.ReadFile(filepath.Join(out, "marker"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "parent\n" {
		t.Errorf("the child's stage \"base\" gave %q: bake no longer replaces a stage with a named context of its name", got)
	}
}
