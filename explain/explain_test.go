package explain_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overthink/ov/explain"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

const (
	builderA = "unix:///run/a.sock"
	digest1  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digest2  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	index1   = "sha256:aaaa111111111111111111111111111111111111111111111111111111111111"
	index2   = "sha256:bbbb111111111111111111111111111111111111111111111111111111111111"
)

// project writes a family: deb-parent with
//
//	repo        root.yml; attached (pkgs' package install depends on it)
//	pkgs        deb packages (attached)
//	marker      root.yml + marker.txt (detached)
//	uses-marker user.yml, depends on marker (detached)
//	hello-node  package.json (detached), env
//	late-pkgs   deb packages (attached, after the detached ones)
//
// and deb-child (child-tool: root.yml) on it.
func project(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	task := "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo hi\n"
	for name, content := range map[string]string{
		"images.yml": `defaults:
  registry: ov.test
  platforms: [linux/amd64]
  pkg: deb
images:
  deb-parent:
    base: "debian:bookworm"
    layers: [pkgs, marker, uses-marker, hello-node, late-pkgs]
  deb-child:
    base: deb-parent
    layers: [child-tool]
`,
		"layers/repo/root.yml":           task,
		"layers/pkgs/layer.yml":          "depends: [repo]\ndeb:\n  packages: [jq]\n",
		"layers/marker/root.yml":         task,
		"layers/marker/marker.txt":       "one\n",
		"layers/uses-marker/layer.yml":   "depends: [marker]\n",
		"layers/uses-marker/user.yml":    task,
		"layers/hello-node/package.json": `{"name":"hello","version":"1.0.0"}`,
		"layers/late-pkgs/layer.yml":     "deb:\n  packages: [curl]\n",
		"layers/hello-node/layer.yml":    "env:\n  FOO: bar\n",
		"layers/child-tool/root.yml":     task,
	} {
		write(t, filepath.Join(dir, name), content)
	}
	return dir
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type build struct {
	builder string
	base    explain.Base
}

func defaults() build {
	return build{builderA, explain.Base{Digest: index1, Platforms: map[string]string{"linux/amd64": digest1}}}
}

// fingerprint loads and plans the project and fingerprints the family.
func fingerprint(t *testing.T, dir string, b build) []*explain.Record {
	t.Helper()
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := plan.Build(p, nil, plan.Options{CalVer: "2026.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	var out []*explain.Record
	for _, img := range plans {
		in := explain.Inputs{Builder: b.builder, Platforms: img.Platforms, Layers: p.Layers}
		if img.External != "" {
			in.Base = b.base
		}
		r, err := explain.Fingerprint(img, in)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// record writes the family's records, as a successful build does.
func record(t *testing.T, dir string, b build) {
	t.Helper()
	for _, r := range fingerprint(t, dir, b) {
		if err := explain.Write(dir, r); err != nil {
			t.Fatal(err)
		}
	}
}

func explainNow(t *testing.T, dir string, b build) []explain.Report {
	t.Helper()
	return explain.Family(fingerprint(t, dir, b), func(image string) *explain.Record { return explain.Read(dir, image) })
}

// verdicts flattens reports to "image/row: rebuild reason" or
// "image/row: reuse".
func verdicts(reps []explain.Report) map[string]string {
	out := map[string]string{}
	for _, r := range reps {
		for _, v := range r.Rows {
			s := "reuse"
			if v.Rebuild {
				s = "rebuild " + v.Reason
			}
			out[r.Image+"/"+v.Row] = s
		}
	}
	return out
}

func check(t *testing.T, reps []explain.Report, want map[string]string) {
	t.Helper()
	got := verdicts(reps)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected row %s: %q", k, got[k])
		}
	}
	if t.Failed() {
		var b bytes.Buffer
		explain.Print(&b, reps)
		t.Logf("report:\n%s", b.String())
	}
}

// allReuse is the verdict of an unchanged family.
func allReuse() map[string]string {
	return map[string]string{
		"deb-parent/(setup)":     "reuse",
		"deb-parent/repo":        "reuse",
		"deb-parent/pkgs":        "reuse",
		"deb-parent/marker":      "reuse",
		"deb-parent/uses-marker": "reuse",
		"deb-parent/hello-node":  "reuse",
		"deb-parent/late-pkgs":   "reuse",
		"deb-child/(setup)":      "reuse",
		"deb-child/child-tool":   "reuse",
		"deb-parent/(image)":     "reuse", // the final USER
		"deb-child/(image)":      "reuse",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestUnchanged(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	reps := explainNow(t, dir, defaults())
	check(t, reps, allReuse())
	for _, r := range reps {
		if r.Rebuild {
			t.Errorf("%s rebuilds", r.Image)
		}
	}
}

func TestNoRecord(t *testing.T) {
	dir := project(t)
	want := map[string]string{}
	for k := range allReuse() {
		want[k] = "rebuild never built here"
	}
	check(t, explainNow(t, dir, defaults()), want)
}

func TestOtherBuilder(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	b := defaults()
	b.builder = "tcp://elsewhere:1234"
	want := map[string]string{}
	for k := range allReuse() {
		want[k] = "rebuild last built on builder " + builderA
	}
	check(t, explainNow(t, dir, b), want)
}

// A file of a detached layer: that layer and the detached layers depending
// on it rebuild; unrelated detached layers and the attached chain are reused,
// and so is nothing of the child but what sits on the changed parent.
func TestDetachedFileEdit(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	write(t, filepath.Join(dir, "layers/marker/marker.txt"), "two\n")
	check(t, explainNow(t, dir, defaults()), with(allReuse(),
		"deb-parent/marker", "rebuild file layers/marker/marker.txt changed",
		"deb-parent/uses-marker", "rebuild depends on marker, which changes",
		"deb-child/(setup)", "rebuild parent deb-parent changes (layer marker)",
		"deb-child/child-tool", "rebuild parent deb-parent changes (layer marker)",
		"deb-child/(image)", "rebuild parent deb-parent changes (layer marker)",
	))
}

// A file of an attached layer: it and every step after it rebuild.
func TestAttachedFileEdit(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	write(t, filepath.Join(dir, "layers/repo/extra.list"), "deb http://example/ bookworm main\n")
	after := "rebuild after attached layer repo, which changes"
	check(t, explainNow(t, dir, defaults()), with(allReuse(),
		"deb-parent/repo", "rebuild file layers/repo/extra.list added",
		"deb-parent/pkgs", after,
		"deb-parent/marker", after,
		"deb-parent/uses-marker", after,
		"deb-parent/hello-node", after,
		"deb-parent/late-pkgs", after,
		"deb-parent/(image)", after,
		"deb-child/(setup)", "rebuild parent deb-parent changes (layer repo)",
		"deb-child/child-tool", "rebuild parent deb-parent changes (layer repo)",
		"deb-child/(image)", "rebuild parent deb-parent changes (layer repo)",
	))
}

// layer.yml of a layer whose files steps read is one of those files; of a
// package layer it changes the steps.
func TestLayerYmlEdit(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	write(t, filepath.Join(dir, "layers/uses-marker/layer.yml"), "depends: [marker]\n# a comment\n")
	check(t, explainNow(t, dir, defaults()), with(allReuse(),
		"deb-parent/uses-marker", "rebuild layer.yml changed",
		"deb-child/(setup)", "rebuild parent deb-parent changes (layer uses-marker)",
		"deb-child/child-tool", "rebuild parent deb-parent changes (layer uses-marker)",
		"deb-child/(image)", "rebuild parent deb-parent changes (layer uses-marker)",
	))

	record(t, dir, defaults())
	write(t, filepath.Join(dir, "layers/late-pkgs/layer.yml"), "deb:\n  packages: [curl, wget]\n")
	check(t, explainNow(t, dir, defaults()), with(allReuse(),
		"deb-parent/late-pkgs", "rebuild layer.yml changed",
		"deb-parent/(image)", "rebuild after attached layer late-pkgs, which changes",
		"deb-child/(setup)", "rebuild parent deb-parent changes (layer late-pkgs)",
		"deb-child/child-tool", "rebuild parent deb-parent changes (layer late-pkgs)",
		"deb-child/(image)", "rebuild parent deb-parent changes (layer late-pkgs)",
	))

	// A comment in a layer.yml no step reads changes nothing.
	record(t, dir, defaults())
	write(t, filepath.Join(dir, "layers/late-pkgs/layer.yml"), "# curl and wget\ndeb:\n  packages: [curl, wget]\n")
	check(t, explainNow(t, dir, defaults()), allReuse())
}

// An environment change reruns everything after the bootstrap.
func TestEnvEdit(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	write(t, filepath.Join(dir, "layers/hello-node/layer.yml"), "env:\n  FOO: baz\n")
	env := "rebuild environment changed (layer.yml of hello-node)"
	want := map[string]string{}
	for k := range allReuse() {
		want[k] = env
	}
	want["deb-child/(setup)"] = "rebuild parent deb-parent changes"
	want["deb-child/child-tool"] = "rebuild parent deb-parent changes"
	want["deb-child/(image)"] = "rebuild parent deb-parent changes"
	check(t, explainNow(t, dir, defaults()), want)
}

func TestBaseDigest(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	b := defaults()
	b.base = explain.Base{Digest: index2, Platforms: map[string]string{"linux/amd64": digest2}}
	reps := explainNow(t, dir, b)
	want := map[string]string{}
	for k := range allReuse() {
		want[k] = "rebuild base debian:bookworm digest changed (sha256:111111111111… -> sha256:222222222222…)"
	}
	want["deb-child/(setup)"] = "rebuild parent deb-parent changes"
	want["deb-child/child-tool"] = "rebuild parent deb-parent changes"
	want["deb-child/(image)"] = "rebuild parent deb-parent changes"
	check(t, reps, want)
	if !strings.Contains(reps[0].Base, "(changed from sha256:aaaa11111111…)") {
		t.Errorf("header %q", reps[0].Base)
	}

	// Another platform's image in the index changing does not matter.
	b.base = explain.Base{Digest: index2, Platforms: map[string]string{"linux/amd64": digest1}}
	check(t, explainNow(t, dir, b), allReuse())

	// An unreachable registry: unknown, assumed unchanged.
	b.base = explain.Base{Err: errors.New("connection refused")}
	reps = explainNow(t, dir, b)
	check(t, reps, allReuse())
	if want := "base debian:bookworm digest unknown (connection refused)"; reps[0].Base != want {
		t.Errorf("header %q, want %q", reps[0].Base, want)
	}
}

func TestPrint(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	write(t, filepath.Join(dir, "layers/marker/marker.txt"), "two\n")
	var b bytes.Buffer
	if err := explain.Print(&b, explainNow(t, dir, defaults())); err != nil {
		t.Fatal(err)
	}
	want := `deb-parent: rebuild, base debian:bookworm@sha256:aaaa11111111… (unchanged)
  (setup)      reuse
  repo         reuse
  pkgs         reuse
  marker       rebuild  file layers/marker/marker.txt changed
  uses-marker  rebuild  depends on marker, which changes
  hello-node   reuse
  late-pkgs    reuse
  (image)      reuse
deb-child: rebuild, base deb-parent (changes)
  (setup)      rebuild  parent deb-parent changes (layer marker)
  child-tool   rebuild  parent deb-parent changes (layer marker)
  (image)      rebuild  parent deb-parent changes (layer marker)
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A build of one platform keeps the record of the others when the inputs
// are the same, and forgets them when they changed.
func TestWriteKeepsPlatforms(t *testing.T) {
	dir := project(t)
	r := fingerprint(t, dir, defaults())[0]
	r.Platforms = map[string]string{"linux/arm64": digest2}
	if err := explain.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	r = fingerprint(t, dir, defaults())[0]
	if err := explain.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	got := explain.Read(dir, r.Image)
	if len(got.Platforms) != 2 || got.Platforms["linux/arm64"] != digest2 || got.Platforms["linux/amd64"] != digest1 {
		t.Errorf("platforms %v", got.Platforms)
	}
	write(t, filepath.Join(dir, "layers/marker/marker.txt"), "two\n")
	r = fingerprint(t, dir, defaults())[0]
	if err := explain.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	if got := explain.Read(dir, r.Image); len(got.Platforms) != 1 {
		t.Errorf("platforms %v after an input changed", got.Platforms)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, explain.Dir, ".tmp-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// A record that exports nothing (a parent built only into its child)
// keeps the last export of the same inputs, and drops it when an input
// changed: that export is another image.
func TestWriteKeepsExport(t *testing.T) {
	dir := project(t)
	r := fingerprint(t, dir, defaults())[0]
	r.Exported, r.ExportedConfig, r.Outputs = digest2, digest1, "push"
	if err := explain.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	r = fingerprint(t, dir, defaults())[0]
	if err := explain.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	if got := explain.Read(dir, r.Image); got.Exported != digest2 || got.ExportedConfig != digest1 || got.Outputs != "push" {
		t.Errorf("unchanged inputs: export %q %q %q", got.Exported, got.ExportedConfig, got.Outputs)
	}
	write(t, filepath.Join(dir, "layers/marker/marker.txt"), "two\n")
	r = fingerprint(t, dir, defaults())[0]
	if err := explain.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	if got := explain.Read(dir, r.Image); got.Exported != "" || got.Outputs != "" {
		t.Errorf("after an input changed: export %q to %q", got.Exported, got.Outputs)
	}
}

// A layer added at the end: only it builds, on the unchanged chain.
func TestNewLayer(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	images, err := os.ReadFile(filepath.Join(dir, "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "images.yml"), strings.Replace(string(images), "late-pkgs]", "late-pkgs, extra]", 1))
	write(t, filepath.Join(dir, "layers/extra/package.json"), `{"name":"extra","version":"1.0.0"}`)
	check(t, explainNow(t, dir, defaults()), with(allReuse(),
		"deb-parent/extra", "rebuild new layer",
		"deb-child/(setup)", "rebuild parent deb-parent changes (layer extra)",
		"deb-child/child-tool", "rebuild parent deb-parent changes (layer extra)",
		"deb-child/(image)", "rebuild parent deb-parent changes (layer extra)",
	))
}

// What only the exported config holds is an input too: a new EXPOSE and a
// changed final USER rebuild (the no-op must not skip them).
func TestConfigEdit(t *testing.T) {
	dir := project(t)
	record(t, dir, defaults())
	write(t, filepath.Join(dir, "layers/hello-node/layer.yml"), "env:\n  FOO: bar\nports: [8080]\n")
	reps := explainNow(t, dir, defaults())
	if v := verdicts(reps)["deb-parent/(setup)"]; v != "rebuild environment changed (layer.yml of hello-node)" {
		t.Errorf("a new port: (setup) %q", v)
	}

	dir = project(t)
	record(t, dir, defaults())
	images, err := os.ReadFile(filepath.Join(dir, "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "images.yml"), strings.Replace(string(images), "  pkg: deb\n", "  pkg: deb\n  uid: 0\n", 1))
	if v := verdicts(explainNow(t, dir, defaults()))["deb-child/(image)"]; !strings.HasPrefix(v, "rebuild") {
		t.Errorf("uid 0: deb-child (image) %q", v)
	}
}
