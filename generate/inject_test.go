package generate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/zclconf/go-cty/cty"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/overthink/ov/generate"
	"github.com/overthink/ov/installfile"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// corpus holds strings that would change a Containerfile, shell command or
// HCL file if they were pasted in unescaped.
var corpusAll = []string{
	`plain`,
	`double "quoted" value`,
	`single 'quoted' value`,
	`back\slash`,
	`trailing backslash\`,
	`\"escaped quote`,
	`dollar $HOME and ${PATH} and $(id) and ` + "`id`",
	`\$already escaped`,
	`# not a comment`,
	`hash#inside`,
	`semi; rm -rf / && echo pwned || true`,
	`<<EOF`,
	`a <<EOF b`,
	`hcl ${var} and %{ if true }x%{ endif }`,
	`$${literal}`,
	"tab\tinside",
	`unicode ✓ ünï`,
	`--mount=type=bind,source=/,target=/x`,
	` leading and trailing space `,
	`*glob?[x]`,
	`~user`,
}

// project is a one-image project with the given layers, for inputs that
// spec.Load would refuse but plan and generate must still not trust.
func project(t *testing.T, pkg string, layers ...*spec.Layer) *spec.Project {
	t.Helper()
	dir := t.TempDir()
	p := &spec.Project{Dir: dir, Images: map[string]*spec.Image{}, Layers: map[string]*spec.Layer{}, Order: []string{"img"}, Names: []string{"img"}}
	img := &spec.Image{Name: "img", Enabled: true, Base: "debian:bookworm", Platforms: []string{"linux/amd64"},
		Tag: "1.0", Registry: "example.com/o", Pkg: pkg, User: "user", UID: 1000, GID: 1000}
	for _, l := range layers {
		l.Dir = filepath.Join(dir, "layers", l.Name)
		l.Pos = spec.Pos{File: "layers/" + l.Name + "/layer.yml"}
		if err := os.MkdirAll(l.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p.Layers[l.Name] = l
		img.Layers = append(img.Layers, l.Name)
		img.Install = append(img.Install, l.Name)
	}
	p.Images["img"] = img
	return p
}

func build(t *testing.T, p *spec.Project) (*plan.Image, []byte) {
	t.Helper()
	plans, err := plan.Build(p, nil, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	cf, err := generate.Containerfile(plans[len(plans)-1])
	if err != nil {
		t.Fatal(err)
	}
	return plans[len(plans)-1], cf
}

// shape lists a Containerfile's instructions, stage by stage.
func shape(t *testing.T, cf []byte) []string {
	t.Helper()
	stages, args := parseContainerfile(t, cf)
	var out []string
	for range args {
		out = append(out, "ARG")
	}
	for _, s := range stages {
		out = append(out, "FROM "+s.BaseName)
		for _, c := range s.Commands {
			out = append(out, strings.ToUpper(c.Name()))
		}
	}
	return out
}

func finalStage(t *testing.T, cf []byte) instructions.Stage {
	t.Helper()
	stages, _ := parseContainerfile(t, cf)
	return stages[len(stages)-1]
}

// envOf evaluates the final stage's ENV instructions the way the Dockerfile
// frontend does, starting from a base environment.
func envOf(t *testing.T, cf []byte) map[string]string {
	t.Helper()
	env := []string{"PATH=/usr/bin:/bin", "HOME=/wrong", "var=WRONG"}
	lex := shell.NewLex('\\')
	out := map[string]string{}
	for _, c := range finalStage(t, cf).Commands {
		ec, ok := c.(*instructions.EnvCommand)
		if !ok {
			continue
		}
		err := ec.Expand(func(word string) (string, error) {
			w, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(env))
			return w, err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range ec.Env {
			out[kv.Key] = kv.Value
			env = append(env, kv.Key+"="+kv.Value)
		}
	}
	return out
}

func TestEnvValuesRoundTrip(t *testing.T) {
	env := map[string]string{}
	for i, v := range corpusAll {
		env["V"+string(rune('A'+i))] = v
	}
	benign := map[string]string{}
	for k := range env {
		benign[k] = "x"
	}
	evil := []string{`/opt/a "b"`, `/opt/$x`, `/opt/back\slash`, `/opt/${y}`}
	pl, cf := build(t, project(t, "deb", &spec.Layer{Name: "e", Env: env, PathAppend: evil, Installs: installfile.Files("root.yml")}))
	_, cfBenign := build(t, project(t, "deb", &spec.Layer{Name: "e", Env: benign, PathAppend: []string{"/a", "/b", "/c", "/d"}, Installs: installfile.Files("root.yml")}))
	if !slices.Equal(shape(t, cf), shape(t, cfBenign)) {
		t.Fatalf("values changed the instructions:\n%s", cf)
	}
	got := envOf(t, cf)
	for k, v := range env {
		v = spec.ExpandHome(v, "/home/user") // the one expansion values get
		if got[k] != v {
			t.Errorf("ENV %s: got %q, want %q", k, got[k], v)
		}
	}
	wantPath := strings.Join(evil, ":") + ":/usr/bin:/bin"
	if got["PATH"] != wantPath {
		t.Errorf("PATH: got %q, want %q", got["PATH"], wantPath)
	}
	if len(pl.Env) != len(env) {
		t.Errorf("plan has %d env vars, want %d", len(pl.Env), len(env))
	}
}

func TestEnvNewlineRejected(t *testing.T) {
	for _, v := range []string{"a\nRUN id", "a\r\nb", "a\\\nb", "nul\x00"} {
		_, err := plan.Build(project(t, "deb", &spec.Layer{Name: "e", Env: map[string]string{"K": v}, Installs: installfile.Files("root.yml")}), nil, testOptions())
		if err == nil || !strings.Contains(err.Error(), "layers/e/layer.yml") || !strings.Contains(err.Error(), "env K") {
			t.Errorf("value %q: got error %v, want one naming env K in layers/e/layer.yml", v, err)
		}
	}
	_, err := plan.Build(project(t, "deb", &spec.Layer{Name: "e", PathAppend: []string{"/a\n/b"}, Installs: installfile.Files("root.yml")}), nil, testOptions())
	if err == nil {
		t.Error("newline in path_append accepted")
	}
}

// The same through spec.Load: YAML can carry a newline in an env value,
// and validate refuses it first, at its line.
func TestEnvNewlineFromYAML(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "images.yml"), "images:\n  img:\n    base: \"debian:bookworm\"\n    pkg: deb\n    tag: \"1\"\n    layers: [e]\n")
	write(t, filepath.Join(dir, "layers/e/layer.yml"), "env:\n  K: \"line1\\nENV EVIL=1\"\ndeb:\n  packages: [curl]\n")
	_, err := spec.Load(dir)
	if err == nil || !strings.Contains(err.Error(), "layers/e/layer.yml:2: env K") {
		t.Fatalf("got %v, want an error at layers/e/layer.yml:2", err)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// calls parses every RUN of the final stage as a shell script and returns
// each simple command's words, as the shell would pass them.
func calls(t *testing.T, cf []byte) [][]string {
	t.Helper()
	var out [][]string
	for _, c := range finalStage(t, cf).Commands {
		rc, ok := c.(*instructions.RunCommand)
		if !ok {
			continue
		}
		if len(rc.CmdLine) != 1 || !rc.PrependShell {
			t.Fatalf("RUN is not one shell command line: %q", rc.CmdLine)
		}
		f, err := syntax.NewParser().Parse(strings.NewReader(rc.CmdLine[0]), "")
		if err != nil {
			t.Fatalf("RUN shell does not parse: %v\n%s", err, rc.CmdLine[0])
		}
		syntax.Walk(f, func(n syntax.Node) bool {
			ce, ok := n.(*syntax.CallExpr)
			if !ok || len(ce.Args) == 0 {
				return true
			}
			var words []string
			for _, w := range ce.Args {
				// Fields does quote removal; the words here are quoted, so
				// each is one field.
				f, err := expand.Fields(nil, w)
				if err != nil {
					f = []string{"<" + err.Error() + ">"}
				}
				words = append(words, strings.Join(f, " "))
			}
			out = append(out, words)
			return true
		})
	}
	return out
}

// findCall returns the last command starting with prefix.
func findCall(all [][]string, prefix ...string) []string {
	for _, c := range slices.Backward(all) {
		if len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) {
			return c
		}
	}
	return nil
}

func TestShellWordsRoundTrip(t *testing.T) {
	var corpus []string // shell words: no control characters (rejected, below)
	for _, s := range corpusAll {
		if !strings.ContainsRune(s, '\t') {
			corpus = append(corpus, s)
		}
	}
	// deb packages.
	_, cf := build(t, project(t, "deb", &spec.Layer{Name: "p", Deb: &spec.Deb{Packages: corpus}}))
	got := findCall(calls(t, cf), "apt-get", "install", "-y", "--no-install-recommends")
	want := append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, corpus...)
	if !slices.Equal(got, want) {
		t.Errorf("apt-get words:\n got %q\nwant %q", got, want)
	}
	_, cfBenign := build(t, project(t, "deb", &spec.Layer{Name: "p", Deb: &spec.Deb{Packages: []string{"x"}}}))
	if !slices.Equal(shape(t, cf), shape(t, cfBenign)) {
		t.Errorf("package names changed the instructions:\n%s", cf)
	}

	// rpm: repos, gpg keys, copr, options, excludes.
	evil := `https://example.com/a b'c"d$e;f`
	rpm := &spec.Rpm{
		Packages: corpus,
		Copr:     []string{`own'er/pro"ject`},
		Repos:    []spec.Repo{{Name: `re po'`, URL: evil, GPGKey: evil + "/key"}},
		Exclude:  []string{`*debug*`, `a'b`},
		Options:  []string{`--setopt=x=$(id)`},
	}
	_, cf = build(t, project(t, "rpm", &spec.Layer{Name: "r", Rpm: rpm}))
	all := calls(t, cf)
	for _, w := range [][]string{
		{"dnf5", "config-manager", "addrepo", "--from-repofile=" + evil},
		{"dnf5", "config-manager", "setopt", `re po'.enabled=0`},
		{"rpm", "--import", evil + "/key"},
		{"dnf5", "copr", "enable", "-y", `own'er/pro"ject`},
		append([]string{"dnf", "install", "-y", `--setopt=x=$(id)`, `--enable-repo=re po'`, `--exclude=*debug*`, `--exclude=a'b`}, corpus...),
		{"dnf5", "copr", "disable", "-y", `own'er/pro"ject`},
	} {
		if got := findCall(all, w[:3]...); !slices.Equal(got, w) {
			t.Errorf("rpm words:\n got %q\nwant %q", got, w)
		}
	}
}

func TestControlCharactersInWordsRejected(t *testing.T) {
	for _, l := range []*spec.Layer{
		{Name: "p", Deb: &spec.Deb{Packages: []string{"curl\nRUN id"}}},
		{Name: "p", Deb: &spec.Deb{Packages: []string{""}}},
	} {
		if _, err := plan.Build(project(t, "deb", l), nil, testOptions()); err == nil {
			t.Errorf("package %q accepted", l.Deb.Packages)
		}
	}
	rpm := &spec.Rpm{Packages: []string{"x"}, Repos: []spec.Repo{{Name: "r", URL: "https://x/\nRUN id"}}}
	if _, err := plan.Build(project(t, "rpm", &spec.Layer{Name: "r", Rpm: rpm}), nil, testOptions()); err == nil {
		t.Error("repo URL with a newline accepted")
	}
}

func TestServiceTextIsFileContent(t *testing.T) {
	text := "[program:evil]\ncommand=/bin/sh -c \"echo $HOME\" \\\nRUN touch /pwned\nFROM scratch\n# comment\n" + strings.Join(corpusAll, "\n")
	pl, cf := build(t, project(t, "deb", &spec.Layer{Name: "svc", Service: text}))
	_, cfBenign := build(t, project(t, "deb", &spec.Layer{Name: "svc", Service: "[program:x]\n"}))
	if !slices.Equal(shape(t, cf), shape(t, cfBenign)) {
		t.Errorf("service text changed the instructions:\n%s", cf)
	}
	if len(pl.Fragments) != 2 {
		t.Fatalf("fragments: %+v", pl.Fragments)
	}
	f := pl.Fragments[1]
	if f.Name != "01-svc.conf" {
		t.Errorf("fragment name %q", f.Name)
	}
	wantContent := "; .build/img/fragments/01-svc.conf (generated -- do not edit)\n" + text + "\n"
	if string(f.Content) != wantContent {
		t.Errorf("fragment content:\n%q\nwant\n%q", f.Content, wantContent)
	}
	files, err := generate.Files([]*plan.Image{pl})
	if err != nil {
		t.Fatal(err)
	}
	if string(files[".build/img/fragments/01-svc.conf"]) != wantContent {
		t.Error("written fragment differs from the plan's")
	}
}

func TestRejected(t *testing.T) {
	okUsers := testOptions()
	cases := []struct {
		name string
		p    func(t *testing.T) *spec.Project
		opts plan.Options
		msg  string
	}{
		{"service without section", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "s", Service: "user=root\n[program:s]\n"})
		}, okUsers, "section header"},
		{"route host", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "r", Route: &spec.Route{Host: "a`) || Host(`b", Port: 80}, Service: "[program:r]\n"})
		}, okUsers, "route host"},
		{"route host newline", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "r", Route: &spec.Route{Host: "a\n  evil: 1", Port: 80}, Service: "[program:r]\n"})
		}, okUsers, "route host"},
		{"image name", func(t *testing.T) *spec.Project {
			p := project(t, "deb", &spec.Layer{Name: "x", Installs: installfile.Files("root.yml")})
			img := p.Images["img"]
			img.Name = `img" {}`
			p.Images = map[string]*spec.Image{img.Name: img}
			p.Order = []string{img.Name}
			return p
		}, okUsers, "image name"},
		{"reserved layer name", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "supervisord-conf", Installs: installfile.Files("root.yml")})
		}, okUsers, "reserved"},
		{"pixi-build layer name", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "x-pixi-build", Installs: installfile.Files("root.yml")})
		}, okUsers, "reserved"},
		{"bad layer name", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "a b", Installs: installfile.Files("root.yml")})
		}, okUsers, "layer name"},
		{"base reference", func(t *testing.T) *spec.Project {
			p := project(t, "deb", &spec.Layer{Name: "x", Installs: installfile.Files("root.yml")})
			p.Images["img"].Base = "debian:$TAG"
			return p
		}, okUsers, "base"},
		{"home from the base", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "x", Installs: installfile.Files("root.yml")})
		}, plan.Options{CalVer: calver, Users: func(context.Context, string, spec.User) (spec.User, error) {
			return spec.User{Name: "u", UID: 1000, GID: 1000, Home: "/home/a b,dst=/x"}, nil
		}}, "home"},
		{"user name from the base", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "x", Installs: installfile.Files("root.yml")})
		}, plan.Options{CalVer: calver, Users: func(context.Context, string, spec.User) (spec.User, error) {
			return spec.User{Name: "u;id", UID: 1000, GID: 1000, Home: "/home/u"}, nil
		}}, "user name"},
		{"task url", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "x", Installs: installfile.Files("root.yml")})
		}, plan.Options{CalVer: calver, Task: plan.TaskSource{URL: "https://x/'; id #"}}, "task download location"},
		{"task sha", func(t *testing.T) *spec.Project {
			return project(t, "deb", &spec.Layer{Name: "x", Installs: installfile.Files("root.yml")})
		}, plan.Options{CalVer: calver, Task: plan.TaskSource{URL: "https://x", SHA256: map[string]string{"amd64": "abc; id"}}}, "sha256"},
		{"no calver", func(t *testing.T) *spec.Project {
			p := project(t, "deb", &spec.Layer{Name: "x", Installs: installfile.Files("root.yml")})
			p.Images["img"].Tag = "auto"
			return p
		}, plan.Options{}, "CalVer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := plan.Build(c.p(t), nil, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want an error about %q", err, c.msg)
			}
		})
	}
}

func TestBakeEscapes(t *testing.T) {
	plans := []*plan.Image{
		{Name: "a", External: "debian:bookworm", Tags: corpusAll, Platforms: []string{"linux/${arch}", "%{x}", "new\nline"}},
		{Name: "b", Parent: "a", ParentRef: "example.com/o/a:latest", Tags: []string{"example.com/o/b:1"}, Platforms: []string{"linux/amd64"}},
	}
	b, err := generate.Bake(plans)
	if err != nil {
		t.Fatal(err)
	}
	f := parseHCL(t, b)
	content, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "group", LabelNames: []string{"name"}}, {Type: "target", LabelNames: []string{"name"}},
	}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := map[string]map[string]cty.Value{}
	for _, blk := range content.Blocks {
		attrs, diags := blk.Body.JustAttributes()
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		vals := map[string]cty.Value{}
		for n, a := range attrs {
			v, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				t.Fatalf("%s.%s: %v", blk.Labels[0], n, diags)
			}
			vals[n] = v
		}
		got[blk.Type+" "+blk.Labels[0]] = vals
	}
	strs := func(v cty.Value) []string {
		var out []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, e.AsString())
		}
		return out
	}
	if s := strs(got["group default"]["targets"]); !slices.Equal(s, []string{"a", "b"}) {
		t.Errorf("targets %q", s)
	}
	a := got["target a"]
	if s := strs(a["tags"]); !slices.Equal(s, corpusAll) {
		t.Errorf("tags round trip:\n got %q\nwant %q", s, corpusAll)
	}
	if s := strs(a["platforms"]); !slices.Equal(s, plans[0].Platforms) {
		t.Errorf("platforms round trip: %q", s)
	}
	ctxs := got["target b"]["contexts"]
	if !reflect.DeepEqual(ctxs.AsValueMap(), map[string]cty.Value{"example.com/o/a": cty.StringVal("target:a")}) {
		t.Errorf("contexts = %#v", ctxs)
	}
	if a["dockerfile"].AsString() != ".build/a/Containerfile" || a["context"].AsString() != "." {
		t.Errorf("target a: %#v", a)
	}
}

func TestContextName(t *testing.T) {
	for ref, want := range map[string]string{
		"ghcr.io/o/fedora:latest":         "ghcr.io/o/fedora",
		"ghcr.io/o/fedora:1.2.3":          "ghcr.io/o/fedora:1.2.3",
		"fedora:latest":                   "fedora",
		"docker.io/library/x:nightly":     "x:nightly",
		"docker.io/me/x:latest":           "me/x",
		"localhost:5000/team/base:latest": "localhost:5000/team/base",
	} {
		got, err := generate.ContextName(ref)
		if err != nil || got != want {
			t.Errorf("ContextName(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
}

// Every RUN's shell and every COPY in a golden Containerfile parses back to
// exactly what the plan says.
func TestStepsRoundTrip(t *testing.T) {
	dir := copyProject(t, "deb")
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := plan.Build(p, nil, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	img := plans[0]
	cf, err := generate.Containerfile(img)
	if err != nil {
		t.Fatal(err)
	}
	var runs []plan.Step
	for _, s := range append(append([]plan.Step{}, img.Bootstrap...), img.Steps...) {
		if s.Kind == plan.Run {
			runs = append(runs, s)
		}
	}
	var got []*instructions.RunCommand
	for _, c := range finalStage(t, cf).Commands {
		if rc, ok := c.(*instructions.RunCommand); ok {
			got = append(got, rc)
		}
	}
	// One FetchTask RUN is rendered with its download around the shell.
	var plain []*instructions.RunCommand
	for _, rc := range got {
		if !strings.Contains(rc.CmdLine[0], plan.TaskArchive) {
			plain = append(plain, rc)
		}
	}
	if len(plain) != len(runs) {
		t.Fatalf("%d RUNs without the task download, plan has %d Run steps", len(plain), len(runs))
	}
	for i, s := range runs {
		rc := plain[i]
		if rc.CmdLine[0] != s.Shell {
			t.Errorf("RUN %d shell:\n got %q\nwant %q", i, rc.CmdLine[0], s.Shell)
		}
		if err := rc.Expand(func(w string) (string, error) { return w, nil }); err != nil {
			t.Fatal(err)
		}
		mounts := instructions.GetMounts(rc)
		if len(mounts) != len(s.Mounts) {
			t.Fatalf("RUN %d: %d mounts, want %d", i, len(mounts), len(s.Mounts))
		}
		for j, m := range s.Mounts {
			g := mounts[j]
			if g.Target != m.Target {
				t.Errorf("RUN %d mount %d target %q, want %q", i, j, g.Target, m.Target)
			}
			switch m.Kind {
			case plan.Cache:
				if g.Type != instructions.MountTypeCache || g.CacheID != m.ID || g.ReadOnly {
					t.Errorf("RUN %d mount %d: %+v, want cache %+v", i, j, g, m)
				}
				if m.Owned && (g.UID == nil || *g.UID != uint64(m.UID) || g.GID == nil || *g.GID != uint64(m.GID)) {
					t.Errorf("RUN %d mount %d: owner %v:%v, want %d:%d", i, j, g.UID, g.GID, m.UID, m.GID)
				}
				if m.Sharing == "locked" && g.CacheSharing != instructions.MountSharingLocked {
					t.Errorf("RUN %d mount %d: sharing %v", i, j, g.CacheSharing)
				}
			case plan.Bind:
				if g.Type != instructions.MountTypeBind || g.From != m.From || g.Source != m.Source || !g.ReadOnly {
					t.Errorf("RUN %d mount %d: %+v, want read-only bind %+v", i, j, g, m)
				}
			}
		}
	}
}

// A bake named context replaces the stage of the same name: a child whose
// Containerfile has a stage named like its parent's context is refused
// (spec refuses the project first: testdata/invalid/bake-stage-hijack).
func TestBakeRefusesStageHijack(t *testing.T) {
	parent := &plan.Image{Name: "base", External: "debian:bookworm", Tags: []string{"base:latest"}, Platforms: []string{"linux/amd64"}}
	for name, child := range map[string]*plan.Image{
		"layer stage": {Contexts: []plan.Context{{Layer: "base", Rel: "layers/base"}}},
		"pixi stage":  {Pixi: []plan.PixiStage{{Stage: "base"}}},
	} {
		child.Name, child.Parent, child.ParentRef = "app", "base", "base:latest"
		child.Tags, child.Platforms = []string{"app:1"}, []string{"linux/amd64"}
		_, err := generate.Bake([]*plan.Image{parent, child})
		if err == nil || !strings.Contains(err.Error(), `stage named "base"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// BuildKit reads Containerfile lines up to 64 KiB: thousands of fragments
// are copied with several COPY lines, and a line that cannot be split (a
// 70 KB env value, which validate refuses first) is an error, not a file
// bake then rejects.
func TestLongLines(t *testing.T) {
	img := &plan.Image{Name: "app", External: "debian:bookworm", Tags: []string{"app:1"}, Platforms: []string{"linux/amd64"}}
	for i := range 5000 {
		img.Fragments = append(img.Fragments, plan.File{Name: fmt.Sprintf("%04d-layer-with-a-long-name-%d.conf", i, i)})
	}
	cf, err := generate.Containerfile(img)
	if err != nil {
		t.Fatal(err)
	}
	copies, srcs := 0, 0
	for _, l := range strings.Split(string(cf), "\n") {
		if len(l) > generate.MaxLine {
			t.Fatalf("line of %d bytes", len(l))
		}
		if f := strings.Fields(l); len(f) > 2 && f[0] == "COPY" && f[len(f)-1] == plan.FragmentsMount+"/" {
			copies++
			srcs += len(f) - 2
		}
	}
	if copies < 2 || srcs != 5000 {
		t.Errorf("%d COPY lines with %d sources, want several with 5000", copies, srcs)
	}
	img.Fragments = nil
	img.Env = []plan.EnvVar{{Key: "BIG", Value: strings.Repeat("x", 70000)}}
	if _, err := generate.Containerfile(img); err == nil || !strings.Contains(err.Error(), "more than the 65535 BuildKit reads") {
		t.Errorf("70 KB env value: %v", err)
	}
}
