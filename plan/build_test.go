package plan_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/overthink/ov/installfile"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// family is a hand-made project: base (external) <- app <- leaf, plus an
// independent image and a disabled one.
func family(t *testing.T) *spec.Project {
	t.Helper()
	dir := t.TempDir()
	layer := func(l *spec.Layer) *spec.Layer {
		l.Dir = filepath.Join(dir, "layers", l.Name)
		l.Pos = spec.Pos{File: "layers/" + l.Name + "/layer.yml"}
		if err := os.MkdirAll(l.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return l
	}
	img := func(name, base, parent, tag string, install ...string) *spec.Image {
		return &spec.Image{Name: name, Enabled: true, Base: base, Parent: parent, Platforms: []string{"linux/amd64"},
			Tag: tag, Registry: "ghcr.io/o", Pkg: "deb", Layers: install, Install: install, User: "user", UID: 1000, GID: 1000}
	}
	p := &spec.Project{Dir: dir, Images: map[string]*spec.Image{}, Layers: map[string]*spec.Layer{}}
	for _, l := range []*spec.Layer{
		layer(&spec.Layer{Name: "tools", Deb: &spec.Deb{Packages: []string{"nodejs", "npm", "cargo"}}, Ports: []int{9090, 80}}),
		layer(&spec.Layer{Name: "node", Env: map[string]string{"NPM_CONFIG_PREFIX": "~/.npm-global"}, PathAppend: []string{"~/.npm-global/bin"}, Installs: installfile.Files("package.json")}),
		layer(&spec.Layer{Name: "rust", Installs: installfile.Files("root.yml", "Cargo.toml", "user.yml")}),
		layer(&spec.Layer{Name: "svc", Service: "[program:svc]\ncommand=true", Route: &spec.Route{Host: "svc.localhost", Port: 9090}}),
		layer(&spec.Layer{Name: "leaf", Ports: []int{80, 7000}, Installs: installfile.Files("user.yml")}),
	} {
		p.Layers[l.Name] = l
	}
	for _, i := range []*spec.Image{
		img("base", "ubuntu:24.04", "", "auto", "tools", "node"),
		img("app", "base", "base", "2.0", "rust", "svc"),
		img("leaf", "app", "app", "auto", "leaf"),
		img("other", "debian:bookworm", "", "nightly", "tools"),
		img("off", "debian:bookworm", "", "auto", "tools"),
	} {
		p.Images[i.Name] = i
	}
	p.Images["off"].Enabled = false
	p.Order = []string{"base", "app", "leaf", "other"}
	p.Names = []string{"base", "app", "leaf", "other", "off"}
	return p
}

type lookups struct{ calls []string }

func (l *lookups) users(_ context.Context, ref string, want spec.User) (spec.User, error) {
	l.calls = append(l.calls, ref)
	if ref == "ubuntu:24.04" && want.UID == 1000 {
		return spec.User{Name: "ubuntu", UID: 1000, GID: 1001, Home: "/home/ubuntu"}, nil
	}
	return spec.User{Name: want.Name, UID: want.UID, GID: want.GID}, nil // no home: plan fills it
}

func build(t *testing.T, p *spec.Project, names ...string) ([]*plan.Image, *lookups) {
	t.Helper()
	l := &lookups{}
	plans, err := plan.Build(p, names, plan.Options{CalVer: "2026.1.0", Users: l.users})
	if err != nil {
		t.Fatal(err)
	}
	return plans, l
}

func byName(plans []*plan.Image) map[string]*plan.Image {
	m := map[string]*plan.Image{}
	for _, p := range plans {
		m[p.Name] = p
	}
	return m
}

func planNames(plans []*plan.Image) []string {
	var out []string
	for _, p := range plans {
		out = append(out, p.Name)
	}
	return out
}

func TestSelection(t *testing.T) {
	p := family(t)
	for _, c := range []struct {
		names, want []string
	}{
		{nil, []string{"base", "app", "leaf", "other"}},
		{[]string{"leaf"}, []string{"base", "app", "leaf"}},
		{[]string{"other", "app"}, []string{"base", "app", "other"}},
	} {
		plans, _ := build(t, p, c.names...)
		if got := planNames(plans); !slices.Equal(got, c.want) {
			t.Errorf("Build(%v) = %v, want %v", c.names, got, c.want)
		}
	}
	for name, msg := range map[string]string{"off": "disabled", "nope": "not in images.yml"} {
		_, err := plan.Build(p, []string{name}, plan.Options{CalVer: "1"})
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Build(%s): %v, want %q", name, err, msg)
		}
	}
}

func TestUsers(t *testing.T) {
	plans, l := build(t, family(t))
	m := byName(plans)
	ubuntu := spec.User{Name: "ubuntu", UID: 1000, GID: 1001, Home: "/home/ubuntu"}
	for _, n := range []string{"base", "app", "leaf"} {
		if m[n].User != ubuntu {
			t.Errorf("%s user = %+v, want the base's %+v", n, m[n].User, ubuntu)
		}
	}
	if want := (spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"}); m["other"].User != want {
		t.Errorf("other user = %+v, want %+v", m["other"].User, want)
	}
	if !slices.Equal(l.calls, []string{"ubuntu:24.04", "debian:bookworm"}) {
		t.Errorf("lookups %v: want one per external base", l.calls)
	}
	if !strings.Contains(m["base"].Bootstrap[2].Shell, "groupadd -g 1001 ubuntu && useradd -m -u 1000 -g 1001 -s /bin/bash ubuntu") {
		t.Errorf("user step: %q", m["base"].Bootstrap[2].Shell)
	}
	if m["base"].Workdir != "/home/ubuntu" || m["app"].Workdir != "" {
		t.Errorf("workdirs %q %q", m["base"].Workdir, m["app"].Workdir)
	}

	// Without a lookup: the configured user, /root for uid 0.
	p := family(t)
	p.Images["other"].UID, p.Images["other"].User = 0, "root"
	plans, err := plan.Build(p, []string{"other"}, plan.Options{CalVer: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if u := plans[0].User; u.Home != "/root" || plans[0].FinalUser != "0" {
		t.Errorf("root: %+v, final %q", u, plans[0].FinalUser)
	}
	for _, s := range plans[0].Steps {
		if s.Desc == "user cache directories" {
			t.Error("cache directories prepared for root")
		}
	}

	// A failing lookup names the base.
	_, err = plan.Build(family(t), nil, plan.Options{CalVer: "1", Users: func(context.Context, string, spec.User) (spec.User, error) {
		return spec.User{}, errors.New("registry down")
	}})
	var lerr *plan.LookupError
	if !errors.As(err, &lerr) || lerr.Base != "ubuntu:24.04" || !strings.Contains(err.Error(), "registry down") || !strings.Contains(err.Error(), `image "base"`) {
		t.Errorf("got %v", err)
	}
}

func TestReferencesAndTags(t *testing.T) {
	m := byName(first(build(t, family(t))))
	if m["base"].External != "ubuntu:24.04" || m["base"].Parent != "" {
		t.Errorf("base: external %q parent %q", m["base"].External, m["base"].Parent)
	}
	if got := m["base"].Tags; !slices.Equal(got, []string{"ghcr.io/o/base:2026.1.0", "ghcr.io/o/base:latest"}) {
		t.Errorf("base tags %v", got)
	}
	// Stable parent references: :latest for auto, the pinned tag otherwise.
	if m["app"].Parent != "base" || m["app"].ParentRef != "ghcr.io/o/base:latest" || m["app"].External != "" {
		t.Errorf("app: parent %q ref %q", m["app"].Parent, m["app"].ParentRef)
	}
	if m["leaf"].ParentRef != "ghcr.io/o/app:2.0" {
		t.Errorf("leaf parent ref %q", m["leaf"].ParentRef)
	}
	if got := m["other"].Tags; !slices.Equal(got, []string{"ghcr.io/o/other:nightly"}) {
		t.Errorf("other tags %v", got)
	}
	// --tag replaces the CalVer of auto (latest stays), and the children
	// keep referring to :latest, so their Containerfiles do not change
	// with the version.
	plans, err := plan.Build(family(t), nil, plan.Options{CalVer: "x", TagOverride: "rc1"})
	if err != nil {
		t.Fatal(err)
	}
	m = byName(plans)
	if m["app"].ParentRef != "ghcr.io/o/base:latest" || !slices.Equal(m["leaf"].Tags, []string{"ghcr.io/o/leaf:rc1", "ghcr.io/o/leaf:latest"}) {
		t.Errorf("override: app parent %q, leaf tags %v", m["app"].ParentRef, m["leaf"].Tags)
	}
}

func first[A, B any](a A, _ B) A { return a }

func TestSteps(t *testing.T) {
	m := byName(first(build(t, family(t))))
	base, app, leaf := m["base"], m["app"], m["leaf"]

	// Bootstrap: apt tools, task, user; all root.
	if len(base.Bootstrap) != 3 || base.Bootstrap[1].Kind != plan.FetchTask {
		t.Fatalf("bootstrap %+v", base.Bootstrap)
	}
	for _, s := range base.Bootstrap {
		if s.User != "root" {
			t.Errorf("bootstrap step %q runs as %q", s.Desc, s.User)
		}
	}
	if base.Task.URL != plan.DefaultTaskURL || base.Task.ArchiveURL("arm64") != plan.DefaultTaskURL+"/task_linux_arm64.tar.gz" {
		t.Errorf("task source %+v", base.Task)
	}
	if len(app.Bootstrap) != 0 {
		t.Errorf("child has a bootstrap")
	}

	// Env and ports of the image's own layers.
	if !slices.Equal(base.Env, []plan.EnvVar{{Key: "NPM_CONFIG_PREFIX", Value: "/home/ubuntu/.npm-global"}}) ||
		!slices.Equal(base.PathAppend, []string{"/home/ubuntu/.npm-global/bin"}) {
		t.Errorf("env %v path %v", base.Env, base.PathAppend)
	}
	if !slices.Equal(base.Expose, []int{80, 9090}) || !slices.Equal(leaf.Expose, []int{80, 7000}) || app.Expose != nil {
		t.Errorf("expose base %v leaf %v app %v", base.Expose, leaf.Expose, app.Expose)
	}

	// Every user step runs as the uid, everything else as root, and the
	// cache mount parents are prepared first, as root.
	for _, img := range []*plan.Image{base, app, leaf} {
		prepared := false
		for _, s := range img.Steps {
			if s.Desc == "user cache directories" {
				prepared = true
				if s.User != "root" {
					t.Errorf("%s: prepare step as %q", img.Name, s.User)
				}
				for _, m := range ownedMounts(img) {
					if !strings.Contains(s.Shell, m.Target) {
						t.Errorf("%s: prepare step misses %s: %q", img.Name, m.Target, s.Shell)
					}
				}
			}
			for _, mt := range s.Mounts {
				if mt.Owned {
					if !prepared {
						t.Errorf("%s: %q mounts %s before the prepare step", img.Name, s.Desc, mt.Target)
					}
					if s.User != "1000" || mt.UID != 1000 || mt.GID != 1001 {
						t.Errorf("%s: %q runs as %q with mount owner %d:%d", img.Name, s.Desc, s.User, mt.UID, mt.GID)
					}
				}
			}
			if s.Kind == plan.Run && s.User == "" {
				t.Errorf("%s: %q has no user", img.Name, s.Desc)
			}
		}
		if img.FinalUser != "1000" {
			t.Errorf("%s final user %q", img.Name, img.FinalUser)
		}
	}

	// Stable cache ids.
	ids := map[string]bool{}
	for _, img := range []*plan.Image{base, app, leaf} {
		for _, s := range append(append([]plan.Step{}, img.Bootstrap...), img.Steps...) {
			for _, mt := range s.Mounts {
				if mt.Kind == plan.Cache {
					ids[mt.ID+" "+mt.Target] = true
				}
			}
		}
	}
	for _, want := range []string{"ov-apt-cache /var/cache/apt", "ov-apt-lib /var/lib/apt", "ov-npm-1000 /home/ubuntu/.cache/npm", "ov-cargo-1000 /home/ubuntu/.cargo/registry"} {
		if !ids[want] {
			t.Errorf("no cache mount %q in %v", want, ids)
		}
	}

	// Per-layer order in app: rust (root.yml, prepare, Cargo.toml, user.yml), then
	// image-level: supervisord assembly, routes.
	var descs []string
	for _, s := range app.Steps {
		descs = append(descs, s.Layer+":"+s.Desc)
	}
	want := []string{"rust:root.yml", "rust:user cache directories", "rust:Cargo.toml", "rust:user.yml",
		":assemble /etc/supervisord.conf", ":COPY traefik routes"}
	if !slices.Equal(descs, want) {
		t.Errorf("app steps:\n got %q\nwant %q", descs, want)
	}
	if len(app.Fragments) != 2 || app.Fragments[1].Name != "04-svc.conf" || app.Routes == nil {
		t.Errorf("app fragments %v routes %q", app.Fragments, app.Routes)
	}
	if !strings.HasSuffix(string(app.Fragments[1].Content), "command=true\n") {
		t.Errorf("fragment without its final newline: %q", app.Fragments[1].Content)
	}
	// The leaf adds no service: it keeps app's supervisord.conf.
	if leaf.Fragments != nil || leaf.Routes != nil {
		t.Errorf("leaf rewrites services or routes")
	}
	// Only layers whose files steps read get a context.
	var ctxs []string
	for _, c := range base.Contexts {
		ctxs = append(ctxs, c.Layer+"="+c.Rel)
	}
	if !slices.Equal(ctxs, []string{"node=layers/node"}) {
		t.Errorf("base contexts %v", ctxs)
	}
}

func ownedMounts(img *plan.Image) []plan.Mount {
	var out []plan.Mount
	for _, s := range img.Steps {
		for _, m := range s.Mounts {
			if m.Owned {
				out = append(out, m)
			}
		}
	}
	return out
}

func TestPixiStages(t *testing.T) {
	p := family(t)
	for _, kind := range []string{"pixi.toml", "pyproject.toml", "environment.yml"} {
		name := "py-" + strings.Split(kind, ".")[0]
		l := &spec.Layer{Name: name, Installs: installfile.Files(kind), Dir: filepath.Join(p.Dir, "layers", name)}
		os.MkdirAll(l.Dir, 0o755)
		p.Layers[name] = l
		p.Images["other"].Install = append(p.Images["other"].Install, name)
	}
	p.Layers["py-pixi"].Installs[0].Lock = "pixi.lock"
	plans, err := plan.Build(p, []string{"other"}, plan.Options{CalVer: "1", PixiImage: "example.com/pixi:0.50"})
	if err != nil {
		t.Fatal(err)
	}
	img := plans[0]
	if len(img.Pixi) != 3 {
		t.Fatalf("pixi stages %+v", img.Pixi)
	}
	wantInstall := []string{"pixi install --frozen", "pixi install --manifest-path pyproject.toml", "pixi init --import environment.yml && pixi install"}
	for i, ps := range img.Pixi {
		if ps.Install != wantInstall[i] || ps.Image != "example.com/pixi:0.50" || ps.Workdir != "/home/user" ||
			ps.EnvDir != "/home/user/.pixi/envs/default" || ps.Stage != ps.Layer+"-pixi-build" {
			t.Errorf("stage %d: %+v", i, ps)
		}
	}
	if !slices.Equal(img.Pixi[0].Files, []string{"pixi.toml", "pixi.lock"}) || !slices.Equal(img.Pixi[1].Files, []string{"pyproject.toml"}) {
		t.Errorf("files %v %v", img.Pixi[0].Files, img.Pixi[1].Files)
	}
	var copies []string
	for _, s := range img.Steps {
		if s.Kind == plan.Copy {
			copies = append(copies, s.From+":"+s.Src+"->"+s.Dst+":"+s.Chown)
		}
	}
	want := []string{
		"py-pixi-pixi-build:/home/user/.pixi/envs/default->/home/user/.pixi/envs/default:1000:1000",
		"py-pyproject-pixi-build:/home/user/.pixi/envs/default->/home/user/.pixi/envs/default:1000:1000",
		"py-environment-pixi-build:/home/user/.pixi/envs/default->/home/user/.pixi/envs/default:1000:1000",
		"py-pixi-pixi-build:/usr/local/bin/pixi->/usr/local/bin/pixi:",
	}
	if !slices.Equal(copies, want) {
		t.Errorf("copies:\n got %q\nwant %q", copies, want)
	}
}

func TestBootc(t *testing.T) {
	p := family(t)
	p.Images["other"].Bootc = true
	plans, err := plan.Build(p, []string{"other"}, plan.Options{CalVer: "1"})
	if err != nil {
		t.Fatal(err)
	}
	// bootc container lint needs root; the image's final user stays.
	if l := plans[0].Lint; l == nil || l.Shell != "bootc container lint" || l.User != "root" || plans[0].FinalUser != "1000" {
		t.Errorf("lint %+v, final user %q", l, plans[0].FinalUser)
	}
	if plans, _ := build(t, family(t), "other"); plans[0].Lint != nil {
		t.Error("lint without bootc")
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"curl":           "curl",
		"--setopt=a=b":   "--setopt=a=b",
		"a b":            "'a b'",
		"it's":           `'it'\''s'`,
		"$x":             "'$x'",
		"*":              "'*'",
		"":               "''",
		"~user":          "'~user'",
		"python3-@devel": "python3-@devel",
	} {
		if got := plan.Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// A base whose account at the uid has home "/" still gets clean paths.
func TestRootDirHome(t *testing.T) {
	plans, err := plan.Build(family(t), []string{"base"}, plan.Options{CalVer: "1",
		Users: func(context.Context, string, spec.User) (spec.User, error) {
			return spec.User{Name: "svc", UID: 1000, GID: 1000, Home: "/"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	var prep string
	for _, s := range plans[0].Steps {
		if s.Desc == "user cache directories" {
			prep = s.Shell
		}
		for _, m := range s.Mounts {
			if m.Owned {
				targets = append(targets, m.Target)
			}
		}
	}
	if !slices.Equal(targets, []string{"/.cache/npm"}) || !strings.Contains(prep, "mkdir -p /.cache /.cache/npm &&") {
		t.Errorf("targets %v, prepare %q", targets, prep)
	}
}

// Detach: a layer's own-file steps detach unless an attached step (a
// package install) of a later layer depends on it; package installs and
// image-level steps never do.
func TestDetach(t *testing.T) {
	p := family(t)
	mk := func(l *spec.Layer) {
		l.Dir = filepath.Join(p.Dir, "layers", l.Name)
		p.Layers[l.Name] = l
	}
	// repo adds an apt source that pkgs installs from: it must stay in the
	// chain. files depends on tools (attached) and may detach.
	mk(&spec.Layer{Name: "repo", Installs: installfile.Files("root.yml")})
	mk(&spec.Layer{Name: "pkgs", Depends: []string{"repo"}, Deb: &spec.Deb{Packages: []string{"jq"}}, Installs: installfile.Files("user.yml")})
	mk(&spec.Layer{Name: "files", Depends: []string{"tools", "pkgs"}, Installs: installfile.Files("root.yml", "user.yml")})
	p.Images["other"].Install = []string{"tools", "repo", "pkgs", "files", "node"}
	p.Images["other"].Layers = p.Images["other"].Install
	plans, _ := build(t, p, "other", "app")
	other := byName(plans)["other"]

	want := map[string][]string{"tools": nil, "repo": nil, "pkgs": {"repo"}, "files": {"tools", "pkgs"}, "node": nil}
	for l, w := range want {
		if got := other.Depends[l]; !slices.Equal(got, w) {
			t.Errorf("Depends[%s] = %q, want %q", l, got, w)
		}
	}
	if got := other.AllDepends("files"); !slices.Equal(got, []string{"tools", "pkgs", "repo"}) {
		t.Errorf("AllDepends(files) = %q, want [tools pkgs repo]", got)
	}
	var got []string
	for _, s := range other.Steps {
		got = append(got, s.Layer+"/"+s.Desc+"/"+map[bool]string{true: "detach", false: "chain"}[s.Detach])
	}
	wantSteps := []string{
		"tools/deb packages/chain",
		"repo/root.yml/chain", // pkgs' install depends on it
		"pkgs/deb packages/chain",
		"pkgs/user cache directories/chain",
		"pkgs/user.yml/detach",
		"files/root.yml/detach",
		"files/user.yml/detach",
		"node/package.json/detach",
	}
	if !slices.Equal(got, wantSteps) {
		t.Errorf("steps:\n got %q\nwant %q", got, wantSteps)
	}
	for _, s := range append(other.Bootstrap, byName(plans)["app"].Steps...) {
		if s.Detach && (s.Layer == "" || strings.Contains(s.Desc, "packages")) {
			t.Errorf("image-level or package step %q detaches", s.Desc)
		}
	}
	// A child's layers depending on the parent's see it in their base.
	if d := byName(plans)["app"].Depends; len(d["rust"]) != 0 || len(d["svc"]) != 0 {
		t.Errorf("app Depends = %v, want none (tools is the parent's)", d)
	}
}

func TestAttach(t *testing.T) {
	img := &plan.Image{
		Depends: map[string][]string{"c": {"a"}},
		Steps: []plan.Step{
			{Layer: "a", Detach: true}, {Layer: "b", Detach: true}, {Layer: "c", Detach: true}, {Layer: "p"},
		},
	}
	got := img.Attach([]string{"c"})
	var detached []string
	for _, s := range got.Steps {
		if s.Detach {
			detached = append(detached, s.Layer)
		}
	}
	if !slices.Equal(detached, []string{"b"}) {
		t.Errorf("detached after attaching c: %q, want [b] (a is c's dependency)", detached)
	}
	if !img.Steps[0].Detach || !img.Steps[2].Detach {
		t.Error("Attach changed its receiver")
	}
	if img.Attach(nil) != img {
		t.Error("Attach(nil) copied")
	}
}

// Routes are bound to the web entry point of the shipped traefik config,
// not to every entry point (the dashboard's included).
func TestRoutesEntryPoint(t *testing.T) {
	m := byName(first(build(t, family(t))))
	var routes struct {
		HTTP struct {
			Routers map[string]struct {
				EntryPoints []string `yaml:"entryPoints"`
				Rule        string   `yaml:"rule"`
			} `yaml:"routers"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(m["app"].Routes, &routes); err != nil {
		t.Fatal(err)
	}
	r, ok := routes.HTTP.Routers["svc"]
	if !ok || !slices.Equal(r.EntryPoints, []string{"web"}) || r.Rule != "Host(`svc.localhost`)" {
		t.Errorf("routes:\n%s", m["app"].Routes)
	}
	var static struct {
		EntryPoints map[string]any `yaml:"entryPoints"`
	}
	data, err := os.ReadFile("../layers/traefik/traefik.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &static); err != nil {
		t.Fatal(err)
	}
	if _, ok := static.EntryPoints[plan.TraefikEntryPoint]; !ok {
		t.Errorf("layers/traefik/traefik.yml has no entry point %q: %v", plan.TraefikEntryPoint, static.EntryPoints)
	}
}

// The stage names a Containerfile uses are the ones spec reserves, so no
// layer or image name can take them.
func TestStageNamesAreReservedInSpec(t *testing.T) {
	for _, n := range []string{plan.StageSupervisord, plan.StageTraefik, "scratch", "context", "x" + spec.PixiStageSuffix} {
		if !spec.ReservedStage(n) {
			t.Errorf("stage %q is not reserved by spec", n)
		}
	}
}

// A child's own user, uid and gid (a CI runner as root) win over its
// parent's for its own steps, its home and its final USER; a child that sets
// none keeps the parent's user as the base resolved it.
func TestChildOwnUser(t *testing.T) {
	p := family(t)
	leaf := p.Images["leaf"]
	leaf.User, leaf.UID, leaf.GID = "root", 0, 0
	plans, _ := build(t, p, "leaf")
	m := byName(plans)
	if u := m["app"].User; u.Name != "ubuntu" || u.UID != 1000 || u.Home != "/home/ubuntu" {
		t.Errorf("app user %+v, want the base's ubuntu", u)
	}
	pl := m["leaf"]
	if pl.User != (spec.User{Name: "root", UID: 0, GID: 0, Home: "/root"}) || pl.FinalUser != "0" || pl.Workdir != "/root" || len(pl.Bootstrap) != 0 {
		t.Errorf("leaf user %+v final %q workdir %q bootstrap %+v", pl.User, pl.FinalUser, pl.Workdir, pl.Bootstrap)
	}
	for _, s := range pl.Steps {
		if s.User != "root" {
			t.Errorf("leaf step %q runs as %q, want root", s.Desc, s.User)
		}
	}

	leaf.User, leaf.UID, leaf.GID = "ci", 1001, 1001
	plans, _ = build(t, p, "leaf")
	pl = byName(plans)["leaf"]
	if pl.User.Home != "/home/ci" || pl.FinalUser != "1001" || pl.Workdir != "/home/ci" || len(pl.Bootstrap) != 1 ||
		!strings.Contains(pl.Bootstrap[0].Shell, "useradd -m -u 1001 -g 1001 -s /bin/bash ci") {
		t.Errorf("leaf user %+v final %q workdir %q bootstrap %+v", pl.User, pl.FinalUser, pl.Workdir, pl.Bootstrap)
	}
	var users []string
	for _, s := range pl.Steps {
		users = append(users, s.User)
	}
	// The cache directories are made as root, then user.yml runs as ci.
	if !slices.Equal(users, []string{"root", "1001"}) || ownedMounts(pl)[0].UID != 1001 {
		t.Errorf("leaf step users %q, mounts %+v", users, ownedMounts(pl))
	}
}

// Each image makes the mount points of the volumes its own layers add,
// owned by the user: every directory from home down for paths under home
// (the base's home: /home/ubuntu), the mount point itself elsewhere. A
// child does not redo its parent's (a name declared again keeps the
// parent's path); a root image needs no step.
func TestVolumeMountPoints(t *testing.T) {
	p := family(t)
	p.Layers["tools"].Volumes = []spec.Volume{{Name: "models", Path: "~/.ollama/models"}, {Name: "srv", Path: "/srv/my data/"}}
	p.Layers["leaf"].Volumes = []spec.Volume{{Name: "models", Path: "/elsewhere"}, {Name: "out", Path: "$HOME/out"}}
	m := byName(first(build(t, p)))
	step := func(img string) *plan.Step {
		for i, s := range m[img].Steps {
			if s.Desc == "volume mount points" {
				return &m[img].Steps[i]
			}
		}
		return nil
	}
	want := "mkdir -p /home/ubuntu/.ollama /home/ubuntu/.ollama/models '/srv/my data' && chown 1000:1001 /home/ubuntu/.ollama /home/ubuntu/.ollama/models '/srv/my data'"
	if s := step("base"); s == nil || s.Shell != want || s.User != "root" || s != &m["base"].Steps[len(m["base"].Steps)-1] {
		t.Errorf("base: %+v\nwant the last step, as root: %s", s, want)
	}
	if s := step("app"); s != nil {
		t.Errorf("app adds no volume: %+v", s)
	}
	if s := step("leaf"); s == nil || s.Shell != "mkdir -p /home/ubuntu/out && chown 1000:1001 /home/ubuntu/out" {
		t.Errorf("leaf: %+v", s)
	}
	p.Images["other"].UID, p.Images["other"].User = 0, "root"
	if s := step("other"); s == nil {
		t.Fatal("other (uid 1000) has no step")
	}
	m = byName(first(build(t, p)))
	if s := step("other"); s != nil {
		t.Errorf("root image: %+v", s)
	}
}

// Plan checks what reaches it with spec's own checks, as a *spec.Error at
// the layer: a project made by hand (not by spec.Load) gets no further.
func TestInputMistakesAreSpecErrors(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(*spec.Project)
		msg  string
	}{
		"route host": {func(p *spec.Project) { p.Layers["svc"].Route.Host = "a b" }, `invalid route host "a b"`},
		"route port": {func(p *spec.Project) { p.Layers["svc"].Route.Port = 70000 }, "route: port 70000 is out of range"},
		"layer name": {func(p *spec.Project) { p.Layers["svc"].Name = "Svc" }, `invalid layer name "Svc"`},
	} {
		t.Run(name, func(t *testing.T) {
			p := family(t)
			c.edit(p)
			_, err := plan.Build(p, []string{"app"}, plan.Options{CalVer: "1"})
			var serr *spec.Error
			if !errors.As(err, &serr) || serr.Pos.File != "layers/svc/layer.yml" || !strings.Contains(serr.Msg, c.msg) {
				t.Fatalf("got %v (%T), want a *spec.Error at layers/svc/layer.yml saying %q", err, err, c.msg)
			}
		})
	}
}

// A project file plan cannot read is a failure, not the user's mistake: the
// error keeps its type (the CLI exits 2 for it).
func TestHeaderReadFailureKeepsItsType(t *testing.T) {
	p := family(t)
	if err := os.MkdirAll(filepath.Join(p.Dir, spec.HeaderFile), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := plan.Build(p, []string{"app"}, plan.Options{CalVer: "1"})
	var serr *spec.Error
	var perr *fs.PathError
	if errors.As(err, &serr) || !errors.As(err, &perr) || !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("got %v (%T), want the read's *fs.PathError (EISDIR) and no *spec.Error", err, err)
	}
}
