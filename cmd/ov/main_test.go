package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// now is the fixed invocation time of in-process runs: 09:05 UTC on day 47.
var now = time.Date(2026, 2, 16, 9, 5, 0, 0, time.UTC)

// TestMain lets tests run the real binary: with OV_TEST_MAIN=1 the test
// executable behaves as ov (os.Args after "--").
func TestMain(m *testing.M) {
	if log := os.Getenv(fakeToolLog); log != "" && slices.Contains(fakeTools, filepath.Base(os.Args[0])) {
		os.Exit(fakeTool(log))
	}
	if os.Getenv("OV_TEST_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"ov"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		return
	}
	testenv.Main(m)
}

// ov runs one invocation in-process.
func ov(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb, now)
	return out.String(), errb.String(), code
}

// ovProcess runs the real binary (this test executable as ov).
func ovProcess(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "OV_TEST_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestValidateCorpus runs ov validate on every invalid project of the spec
// corpus: exit 1, nothing on stdout, exactly the expected errors on stderr.
func TestValidateCorpus(t *testing.T) {
	dirs, _ := filepath.Glob("../../spec/testdata/invalid/*")
	if len(dirs) < 40 {
		t.Fatalf("only %d corpus cases", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := ov(t, "-C", dir, "validate")
			if code != 1 || stdout != "" || stderr != string(want) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and stderr:\n%s", code, stdout, stderr, want)
			}
		})
	}
}

// TestExitCodes runs the real binary for each exit status.
func TestExitCodes(t *testing.T) {
	imagesDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(imagesDir, "images.yml"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"-C", "../..", "validate"}, 0, "ok: 3 images, 7 layers\n"},
		{[]string{"--dir=testdata/project", "validate"}, 0, "ok: 3 images, 7 layers\n"},
		{[]string{"-C", "../../testdata/compat", "validate"}, 0, "ok: 3 images, 6 layers\n"},
		{[]string{"-C", "../../spec/testdata/invalid/path-in-env", "validate"}, 1, "validation error: layers/base/layer.yml:2: env must not set PATH directly (use path_append)\n"},
		{[]string{"-C", imagesDir, "validate"}, 1, "validation error: images.yml: is a directory, not a file\n"},
		{[]string{"-C", "main.go", "validate"}, 1, "validation error: main.go is not a project directory (pass -C a directory holding images.yml)\n"},
		{[]string{"frobnicate"}, 1, "ov: unexpected argument frobnicate (see ov --help)\n"},
		{[]string{"-C", "../..", "inspect", "fedroa"}, 1, "ov: unknown image \"fedroa\" (did you mean \"fedora\"?) (images: fedora, ubuntu, fedora-test)\n"},
		{[]string{"--help"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, code := ovProcess(t, tt.args...)
			if code != tt.code || stderr != tt.stderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
}

// TestGolden compares stdout of the read-only commands with
// testdata/<name>.golden (go test -update rewrites them).
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"shipped-inspect-fedora", []string{"-C", "../..", "inspect", "fedora"}},
		{"shipped-inspect-ubuntu", []string{"-C", "../..", "inspect", "ubuntu"}},
		{"shipped-inspect-fedora-test", []string{"-C", "../..", "inspect", "fedora-test"}},
		{"shipped-inspect-fedora-test-layers", []string{"-C", "../..", "inspect", "fedora-test", "--format", "layers"}},
		{"shipped-list-images", []string{"-C", "../..", "list", "images"}},
		{"shipped-list-layers", []string{"-C", "../..", "list", "layers"}},
		{"shipped-list-targets", []string{"-C", "../..", "list", "targets"}},
		{"shipped-list-services", []string{"-C", "../..", "list", "services"}},
		{"shipped-list-routes", []string{"-C", "../..", "list", "routes"}},
		{"project-inspect-debian", []string{"-C", "testdata/project", "inspect", "debian"}},
		{"project-inspect-web", []string{"-C", "testdata/project", "inspect", "web"}},
		{"project-inspect-local", []string{"-C", "testdata/project", "inspect", "local"}},
		{"project-inspect-old", []string{"-C", "testdata/project", "inspect", "old"}},
		{"project-list-images", []string{"-C", "testdata/project", "list", "images"}},
		{"project-list-layers", []string{"-C", "testdata/project", "list", "layers"}},
		{"project-list-targets", []string{"-C", "testdata/project", "list", "targets"}},
		{"project-list-services", []string{"-C", "testdata/project", "list", "services"}},
		{"project-list-routes", []string{"-C", "testdata/project", "list", "routes"}},
		{"project-format-fields", nil}, // every --format field of web, one "field: value" line each
		{"version", []string{"version"}},
		// The compatibility corpus: shapes of a real-world layer library.
		{"compat-inspect-fedora", []string{"-C", "../../testdata/compat", "inspect", "fedora"}},
		{"compat-inspect-githubrunner", []string{"-C", "../../testdata/compat", "inspect", "githubrunner"}},
		{"compat-inspect-bazzite-ai", []string{"-C", "../../testdata/compat", "inspect", "bazzite-ai"}},
		{"compat-list-layers", []string{"-C", "../../testdata/compat", "list", "layers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if tt.args == nil {
				for _, f := range inspectFields {
					stdout, stderr, code := ov(t, "-C", "testdata/project", "inspect", "web", "--format", f)
					if code != 0 {
						t.Fatalf("--format %s: exit %d: %s", f, code, stderr)
					}
					got += f + ": " + stdout
				}
			} else {
				stdout, stderr, code := ov(t, tt.args...)
				if code != 0 || stderr != "" {
					t.Fatalf("exit %d, stderr %q", code, stderr)
				}
				got = stdout
			}
			golden(t, tt.name, got)
		})
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}

func TestInspectErrors(t *testing.T) {
	_, stderr, code := ov(t, "-C", "../..", "inspect", "fedora", "--format", "layer")
	if code != 1 || !strings.Contains(stderr, `unknown --format field "layer" (did you mean "layers"?)`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = ov(t, "-C", "../../spec/testdata/invalid/layer-cycle", "inspect", "app")
	if code != 1 || !strings.HasPrefix(stderr, "validation error: ") {
		t.Errorf("inspect of an invalid project: exit %d, stderr %q", code, stderr)
	}
	_, _, code = ov(t, "-C", "../..", "list")
	if code != 1 {
		t.Errorf("list without a subcommand: exit %d", code)
	}
}

// TestNewLayer scaffolds a layer and checks that the project still
// validates, with and without the layer in an image.
func TestNewLayer(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, stderr, code := ov(t, "-C", dir, "new", "layer", "my-tool")
	if code != 1 || !strings.Contains(stderr, "not an ov project") {
		t.Fatalf("without images.yml: exit %d, %q", code, stderr)
	}
	write("images.yml", "images:\n  app:\n    layers: [my-tool]\n")
	stdout, stderr, code := ov(t, "-C", dir, "new", "layer", "my-tool")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "created layers/my-tool/") {
		t.Fatalf("new layer: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, f := range []string{"layer.yml", "root.yml"} {
		data, err := os.ReadFile(filepath.Join(dir, "layers", "my-tool", f))
		if err != nil || !strings.Contains(string(data), "my-tool") {
			t.Errorf("%s: %v %q", f, err, data)
		}
	}
	if _, stderr, code := ov(t, "-C", dir, "validate"); code != 0 {
		t.Fatalf("validate after new layer: exit %d: %s", code, stderr)
	}
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l := p.Layer("my-tool"); l == nil || !slices.Contains(l.Files(), "root.yml") || l.Route != nil || len(l.Depends) != 0 {
		t.Errorf("scaffolded layer: %+v", l)
	}
	if _, stderr, code := ov(t, "-C", dir, "new", "layer", "my-tool"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("existing layer: exit %d, %q", code, stderr)
	}
	for _, bad := range []string{"My_Tool", "../escape", "a/b", "x-", "a--b"} {
		if _, stderr, code := ov(t, "-C", dir, "new", "layer", bad); code != 1 || !strings.Contains(stderr, "invalid layer name") {
			t.Errorf("new layer %q: exit %d, %q", bad, code, stderr)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "layers"))
	if len(entries) != 1 {
		t.Errorf("layers/ holds %d entries, want only my-tool", len(entries))
	}
	// The uncommented examples must be valid too: uncomment everything but
	// the route/service block (which would need traefik) and validate.
	data, _ := os.ReadFile(filepath.Join(dir, "layers", "my-tool", "layer.yml"))
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "# ") && (strings.HasPrefix(l, "#   ") || strings.HasSuffix(l, ":") || strings.Contains(l, ": |") || strings.Contains(l, ":   ")) {
			l = l[2:]
		}
		lines = append(lines, l)
	}
	uncommented := strings.Join(lines, "\n")
	write("images.yml", "images:\n  app:\n    layers: [traefik, my-tool]\n")
	if err := os.MkdirAll(filepath.Join(dir, "layers", "traefik"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("layers/traefik/root.yml", "version: '3'\ntasks:\n  install:\n    cmds: [true]\n")
	write("layers/my-tool/layer.yml", strings.Replace(uncommented, "depends:\n  - python\n", "", 1))
	if _, stderr, code := ov(t, "-C", dir, "validate"); code != 0 {
		t.Errorf("uncommented scaffold does not validate: %s\n%s", stderr, uncommented)
	}
}

// collectLess raises GOGC to 400 unless the environment sets GOGC.
func TestCollectLess(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	collectLess()
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("GOGC unset: GC percent %d, want 400", got)
	}
	t.Setenv("GOGC", "100")
	collectLess()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100: GC percent %d, want it kept", got)
	}
}
