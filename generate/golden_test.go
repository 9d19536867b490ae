package generate_test

import (
	"bytes"
	"context"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/overthink/ov/generate"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/*/golden")

const calver = "2026.47.905"

// epoch is the goldens' SOURCE_DATE_EPOCH, as from a commit: the exports
// stamp it, the steps do not see it.
const epoch = 1700000000

// users stands in for baseuser.Lookup: ubuntu:24.04 has user ubuntu at uid
// 1000, like the real image; every base has root at uid 0 and no other
// account.
func users(_ context.Context, ref string, want spec.User) (spec.User, error) {
	switch {
	case ref == "ubuntu:24.04" && want.UID == 1000:
		return spec.User{Name: "ubuntu", UID: 1000, GID: 1000, Home: "/home/ubuntu"}, nil
	case want.UID == 0:
		return spec.User{Name: "root", Home: "/root"}, nil
	}
	u := want
	u.Home = "/home/" + want.Name
	return u, nil
}

func testOptions() plan.Options {
	return plan.Options{CalVer: calver, Users: users, Epoch: &plan.Epoch{Unix: epoch}}
}

// projectDir is where the test project name lives: testdata/<name>, or the
// repository's compatibility corpus (../testdata/compat) for "compat".
func projectDir(name string) string {
	if name == "compat" {
		return filepath.Join("..", "testdata", "compat")
	}
	return filepath.Join("testdata", name)
}

// copyProject copies the project name (without its golden output) to a
// temporary directory.
func copyProject(t *testing.T, name string) string {
	t.Helper()
	src := projectDir(name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "golden" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// tree reads every file under dir, keyed by slash path relative to dir.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func generateProject(t *testing.T, dir string) ([]*plan.Image, *spec.Project) {
	t.Helper()
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := plan.Build(p, nil, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := generate.Write(dir, plans, p); err != nil {
		t.Fatal(err)
	}
	return plans, p
}

// checkGolden compares the files under dir/.build with testdata/<name>/golden.
func checkGolden(t *testing.T, name, dir string) {
	t.Helper()
	got := tree(t, filepath.Join(dir, ".build"))
	golden := filepath.Join(projectDir(name), "golden")
	if *update {
		if err := os.RemoveAll(golden); err != nil {
			t.Fatal(err)
		}
		for rel, b := range got {
			p := filepath.Join(golden, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want := tree(t, golden)
	var names []string
	for rel := range got {
		names = append(names, rel)
	}
	for rel := range want {
		if _, ok := got[rel]; !ok {
			names = append(names, rel)
		}
	}
	sort.Strings(names)
	for _, rel := range names {
		g, okg := got[rel]
		w, okw := want[rel]
		switch {
		case !okw:
			t.Errorf("unexpected file .build/%s (run go test ./generate -update)", rel)
		case !okg:
			t.Errorf("missing file .build/%s", rel)
		case !bytes.Equal(g, w):
			t.Errorf(".build/%s differs from golden (run go test ./generate -update to accept):\n%s", rel, diff(string(w), string(g)))
		}
	}
}

// diff shows the first differing lines.
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

// parseContainerfile parses b the way BuildKit's Dockerfile frontend does.
func parseContainerfile(t *testing.T, b []byte) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Containerfile does not parse: %v\n%s", err, b)
	}
	for _, w := range res.Warnings {
		t.Errorf("parser warning: %s", w.Short)
	}
	stages, args, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Containerfile instructions: %v\n%s", err, b)
	}
	return stages, args
}

func parseHCL(t *testing.T, b []byte) *hcl.File {
	t.Helper()
	f, diags := hclsyntax.ParseConfig(b, "docker-bake.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("bake file does not parse: %v\n%s", diags, b)
	}
	return f
}

func TestGolden(t *testing.T) {
	for _, name := range []string{"rpm", "deb", "family", "compat"} {
		t.Run(name, func(t *testing.T) {
			dir := copyProject(t, name)
			generateProject(t, dir)
			checkGolden(t, name, dir)
			for rel, b := range tree(t, filepath.Join(dir, ".build")) {
				switch {
				case strings.HasSuffix(rel, "Containerfile"):
					parseContainerfile(t, b)
				case strings.HasSuffix(rel, ".hcl"):
					parseHCL(t, b)
				}
			}
		})
	}
}

// A second generate with the same inputs writes nothing new: same bytes,
// files not even replaced.
func TestIdempotent(t *testing.T) {
	dir := copyProject(t, "rpm")
	generateProject(t, dir)
	first := tree(t, filepath.Join(dir, ".build"))
	stat := map[string]os.FileInfo{}
	for rel := range first {
		fi, err := os.Stat(filepath.Join(dir, ".build", rel))
		if err != nil {
			t.Fatal(err)
		}
		stat[rel] = fi
	}
	generateProject(t, dir)
	second := tree(t, filepath.Join(dir, ".build"))
	if len(first) != len(second) {
		t.Fatalf("file count changed: %d -> %d", len(first), len(second))
	}
	for rel, b := range first {
		if !bytes.Equal(b, second[rel]) {
			t.Errorf("%s changed between runs", rel)
		}
		fi, _ := os.Stat(filepath.Join(dir, ".build", rel))
		if !os.SameFile(fi, stat[rel]) {
			t.Errorf("%s was rewritten although unchanged", rel)
		}
	}
}

// Only the bake file carries the per-run CalVer: Containerfiles (and so
// the build cache) do not change from one generate to the next.
func TestCalVerOnlyInBakeFile(t *testing.T) {
	dir := copyProject(t, "family")
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	withCalVer := func(cv string) map[string][]byte {
		o := testOptions()
		o.CalVer = cv
		_, files := render(t, p, o)
		return files
	}
	a, b := withCalVer("2026.1.0"), withCalVer("2027.300.2359")
	for rel := range a {
		if rel == generate.BakePath {
			if bytes.Equal(a[rel], b[rel]) {
				t.Errorf("bake file does not carry the CalVer")
			}
			continue
		}
		if !bytes.Equal(a[rel], b[rel]) {
			t.Errorf("%s depends on the CalVer", rel)
		}
		if bytes.Contains(a[rel], []byte("2026.1.0")) {
			t.Errorf("%s contains the CalVer", rel)
		}
	}
}
