package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// explainProject is a busybox image with two independent file layers and a
// child with one.
func explainProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	install := func(f string) string {
		return "version: '3'\ntasks:\n  install:\n    cmds:\n      - cp " + f + " /" + f + "\n"
	}
	for name, content := range map[string]string{
		"images.yml": `defaults:
  registry: ov.test
  platforms: [linux/amd64]
  pkg: rpm
images:
  bb:
    base: "busybox:latest"
    layers: [first, second]
  bb-child:
    base: bb
    layers: [third]
`,
		"layers/first/root.yml":    install("first.txt"),
		"layers/first/first.txt":   "one\n",
		"layers/second/root.yml":   install("second.txt"),
		"layers/second/second.txt": "two\n",
		"layers/third/root.yml":    install("third.txt"),
		"layers/third/third.txt":   "three\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// stepRuns reads plain progress: for each "[image layer] desc" vertex,
// whether BuildKit ran it (true) or answered every instance of it from its
// cache (false). A vertex shows up once per solve that needs it.
func stepRuns(progress string) map[string]bool {
	names := map[string]string{}
	runs := map[string]bool{}
	vertex := regexp.MustCompile(`^#(\d+) (\[.*)$`)
	for _, line := range strings.Split(progress, "\n") {
		if m := vertex.FindStringSubmatch(line); m != nil {
			if _, ok := names[m[1]]; !ok {
				names[m[1]] = m[2]
			}
			continue
		}
		num, rest, _ := strings.Cut(strings.TrimPrefix(line, "#"), " ")
		name := names[num]
		if !strings.HasPrefix(line, "#") || name == "" {
			continue
		}
		switch {
		case rest == "CACHED":
			runs[name] = runs[name] || false
		case strings.HasPrefix(rest, "DONE"):
			runs[name] = true
		}
	}
	return runs
}

// TestBuildExplain builds a busybox family twice against a real buildkitd,
// editing one layer's file in between, and checks what --explain says
// against what BuildKit then reuses.
func TestBuildExplain(t *testing.T) {
	envFlags := buildEnv(t)
	dir := explainProject(t)
	build := func(t *testing.T) (stdout, stderr string) {
		t.Helper()
		stdout, stderr, code := ov(t, append([]string{"-C", dir, "build", "--explain", "--progress", "plain", "bb-child"}, envFlags...)...)
		if code != 0 {
			t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		return stdout, stderr
	}
	digest := regexp.MustCompile(`base busybox:latest@sha256:[0-9a-f]{12}… \(([a-z ]+)\)`)

	t.Run("first build", func(t *testing.T) {
		stdout, _ := build(t)
		for _, want := range []string{
			"bb: rebuild, base busybox:latest@sha256:",
			"  first    rebuild  never built here\n",
			"  second   rebuild  never built here\n",
			"bb-child: rebuild, base bb (changes)\n",
			"  third    rebuild  never built here\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		if m := digest.FindStringSubmatch(stdout); m == nil || m[1] != "new here" {
			t.Errorf("base digest line: %q in\n%s", m, stdout)
		}
		for _, img := range []string{"bb", "bb-child"} {
			if _, err := os.Stat(filepath.Join(dir, ".build", "state", img+".json")); err != nil {
				t.Errorf("no build record: %v", err)
			}
		}
	})

	t.Run("unchanged", func(t *testing.T) {
		stdout, stderr := build(t)
		want := "bb: reuse, base busybox:latest@"
		if !strings.HasPrefix(stdout, want) || strings.Contains(stdout, "rebuild") {
			t.Errorf("stdout:\n%s", stdout)
		}
		if m := digest.FindStringSubmatch(stdout); m == nil || m[1] != "unchanged" {
			t.Errorf("base digest line: %q", m)
		}
		for step, ran := range stepRuns(stderr) {
			// Sources (FROM, the task download, layer files) are always
			// checked; steps are what may rerun.
			if ran && (strings.HasSuffix(step, "] root.yml") || strings.HasPrefix(step, "[bb] bootstrap: ") && !strings.Contains(step, "(download")) {
				t.Errorf("explain said reuse, but BuildKit ran %s", step)
			}
		}
	})

	t.Run("one file edited", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "layers/first/first.txt"), []byte("uno\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr := build(t)
		for _, want := range []string{
			"bb: rebuild, base busybox:latest@",
			"  (setup)  reuse\n",
			"  first    rebuild  file layers/first/first.txt changed\n",
			"  second   reuse\n",
			"bb-child: rebuild, base bb (changes)\n",
			"  (setup)  rebuild  parent bb changes (layer first)\n",
			"  third    rebuild  parent bb changes (layer first)\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		// What BuildKit did agrees.
		runs := stepRuns(stderr)
		for step, want := range map[string]bool{
			"[bb first] root.yml":          true,
			"[bb second] root.yml":         false,
			"[bb] bootstrap: install task": false,
			"[bb] bootstrap: user user":    false,
			"[bb-child third] root.yml":    true,
		} {
			ran, seen := runs[step]
			if !seen || ran != want {
				t.Errorf("%s: seen %t, ran %t; explain says ran %t", step, seen, ran, want)
			}
		}
		if t.Failed() {
			t.Logf("progress:\n%s", stderr)
		}
	})
}

// TestBuildExplainAttached: two layers rewriting the same shared file are
// attached by the build's check, with a notice; the record says so, and
// the next --explain expects them attached and reuses them.
func TestBuildExplainAttached(t *testing.T) {
	envFlags := buildEnv(t)
	dir := t.TempDir()
	appendShell := func(s string) string {
		return "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo /bin/" + s + " >> /etc/shells\n"
	}
	for name, content := range map[string]string{
		"images.yml":         "defaults:\n  registry: ov.test\n  platforms: [linux/amd64]\n  pkg: rpm\nimages:\n  bb:\n    base: \"busybox:latest\"\n    layers: [s1, s2]\n",
		"layers/s1/root.yml": appendShell("s1"),
		"layers/s2/root.yml": appendShell("s2"),
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := func() (string, string) {
		t.Helper()
		stdout, stderr, code := ov(t, append([]string{"-C", dir, "build", "--explain", "--progress", "plain"}, envFlags...)...)
		if code != 0 {
			t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		return stdout, stderr
	}
	_, stderr := build()
	if !strings.Contains(stderr, `ov: image "bb": layer "s1" builds attached: /etc/shells is also written by layer "s2"`) {
		t.Errorf("no notice for s1 in:\n%s", stderr)
	}
	rec, err := os.ReadFile(filepath.Join(dir, ".build", "state", "bb.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec), `"attached": [`) || !strings.Contains(string(rec), `"s2"`) {
		t.Errorf("record does not list the attached layers:\n%s", rec)
	}
	stdout, _ := build()
	for _, want := range []string{"bb: reuse", "  s1       reuse\n", "  s2       reuse\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("second --explain lacks %q:\n%s", want, stdout)
		}
	}
	// s1 changes: attached, s2 is after it in the chain and reruns too.
	if err := os.WriteFile(filepath.Join(dir, "layers/s1/root.yml"), []byte(appendShell("s1b")), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr = build()
	for _, want := range []string{"  s1       rebuild  file layers/s1/root.yml changed\n", "  s2       rebuild  after attached layer s1, which changes\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("third --explain lacks %q:\n%s", want, stdout)
		}
	}
	if !stepRuns(stderr)["[bb s2] root.yml"] {
		t.Errorf("BuildKit did not rerun s2's root.yml:\n%s", stderr)
	}
}
