package llb

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// fakeResolver answers ResolveImageConfig from a table of configs.
type fakeResolver struct {
	configs map[string]dockerspec.DockerOCIImage // by normalized ref
	calls   []string
}

func (r *fakeResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	p := platforms.Format(*opt.ImageOpt.Platform)
	r.calls = append(r.calls, ref+" "+p)
	img, ok := r.configs[ref]
	if !ok {
		return "", "", nil, fmt.Errorf("%s: not found", ref)
	}
	img.Platform = *opt.ImageOpt.Platform
	dt, err := json.Marshal(img)
	if err != nil {
		return "", "", nil, err
	}
	return ref, digest.FromString(ref + " " + p), dt, nil
}

const debian = "docker.io/library/debian:bookworm"

func debianConfig() dockerspec.DockerOCIImage {
	var img dockerspec.DockerOCIImage
	img.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	img.Config.Cmd = []string{"bash"}
	img.RootFS = ocispecs.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("layer")}}
	img.History = []ocispecs.History{{CreatedBy: "debootstrap"}}
	return img
}

func resolver() *fakeResolver {
	return &fakeResolver{configs: map[string]dockerspec.DockerOCIImage{debian: debianConfig()}}
}

var taskSource = plan.TaskSource{
	URL:    "http://127.0.0.1:9/task/",
	SHA256: map[string]string{"amd64": strings.Repeat("ab", 32), "arm64": strings.Repeat("cd", 32)},
}

func aptCaches() []plan.Mount {
	return []plan.Mount{
		{Kind: plan.Cache, Target: "/var/cache/apt", ID: "apt-cache", Sharing: "locked"},
		{Kind: plan.Cache, Target: "/var/lib/apt", ID: "apt-lib", Sharing: "locked"},
	}
}

// parentPlan is a small external-base image exercising every step kind.
func parentPlan(dir string) *plan.Image {
	ctx := plan.Mount{Kind: plan.Bind, Target: "/ctx", From: "marker", Source: "/"}
	npm := plan.Mount{Kind: plan.Cache, Target: "/home/user/.cache/npm", ID: "npm-1000", Owned: true, UID: 1000, GID: 1000}
	return &plan.Image{
		Name:      "parent",
		External:  "debian:bookworm",
		Platforms: []string{"linux/amd64"},
		User:      spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"},
		Tags:      []string{"ov.test/parent:latest"},
		Contexts:  []plan.Context{{Layer: "marker", Dir: dir, Rel: "layers/marker"}},
		Routes:    []byte("http: {}\n"),
		Task:      taskSource,
		Bootstrap: []plan.Step{
			{Kind: plan.Run, User: "root", Desc: "install curl", Shell: "apt-get update && apt-get install -y curl", Mounts: aptCaches()},
			{Kind: plan.FetchTask, User: "root", Desc: "install task", Shell: "tar -xzf /tmp/task.tar.gz -C /usr/local/bin task"},
			{Kind: plan.Run, User: "root", Desc: "create user", Shell: "useradd -m -u 1000 user"},
		},
		Workdir:    "/home/user",
		Env:        []plan.EnvVar{{Key: "A", Value: "1"}, {Key: "B", Value: `x "y" $HOME`}},
		PathAppend: []string{"/home/user/.npm-global/bin", "/opt/bin"},
		Expose:     []int{8080, 9090},
		Steps: []plan.Step{
			{Kind: plan.Run, Layer: "marker", User: "root", Desc: "marker: root.yml", Shell: "cd /ctx && task -t root.yml install", Mounts: append(aptCaches(), ctx)},
			{Kind: plan.Run, Layer: "marker", User: "1000", Desc: "marker: user.yml", Shell: "cd /ctx && task -t user.yml install", Mounts: []plan.Mount{ctx, npm}},
			{Kind: plan.Copy, User: "root", Desc: "traefik routes", From: plan.StageTraefik, Src: "/routes.yml", Dst: "/etc/traefik/dynamic/routes.yml"},
			{Kind: plan.Copy, User: "root", Desc: "marker file", From: "marker", Src: "marker.txt", Dst: "share/", Chown: "1000:1000"},
		},
		FinalUser: "1000",
	}
}

func childPlan() *plan.Image {
	return &plan.Image{
		Name:      "child",
		Parent:    "parent",
		ParentRef: "ov.test/parent:latest",
		Platforms: []string{"linux/amd64"},
		User:      spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"},
		Env:       []plan.EnvVar{{Key: "A", Value: "2"}, {Key: "C", Value: "3"}},
		Expose:    []int{7070},
		Steps: []plan.Step{
			{Kind: plan.Run, Layer: "tool", User: "root", Desc: "tool: root.yml", Shell: "echo tool > /tool"},
		},
		FinalUser: "1000",
	}
}

// graph is a marshaled definition, decoded for assertions.
type graph struct {
	ops   map[digest.Digest]*pb.Op
	names map[digest.Digest]string
	head  digest.Digest // the state's own vertex
}

func marshal(t *testing.T, img *Image) *graph {
	t.Helper()
	def, err := img.State.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g := &graph{ops: map[digest.Digest]*pb.Op{}, names: map[digest.Digest]string{}}
	var last digest.Digest
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(dt)
		g.ops[d] = &op
		last = d
	}
	for d, md := range def.Metadata {
		g.names[d] = md.Description["llb.customname"]
	}
	// The last op is the terminal reference to the result.
	g.head = digest.Digest(g.ops[last].Inputs[0].Digest)
	return g
}

// named returns the op whose custom name ends with suffix; exactly one must.
func (g *graph) named(t *testing.T, suffix string) *pb.Op {
	t.Helper()
	var found []*pb.Op
	for d, n := range g.names {
		if strings.HasSuffix(n, suffix) {
			found = append(found, g.ops[d])
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ops named *%q; names: %q", len(found), suffix, slices.Sorted(mapValues(g.names)))
	}
	return found[0]
}

func mapValues(m map[digest.Digest]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func (g *graph) input(op *pb.Op, i int64) *pb.Op {
	return g.ops[digest.Digest(op.Inputs[i].Digest)]
}

// chain lists the names of the layer-producing ops from the base to the head,
// following each op's root filesystem input.
func (g *graph) chain() []string {
	var out []string
	for d := g.head; d != ""; {
		op := g.ops[d]
		out = append(out, g.names[d])
		if op.GetSource() != nil || len(op.Inputs) == 0 {
			break
		}
		d = digest.Digest(op.Inputs[0].Digest)
	}
	slices.Reverse(out)
	return out
}

func mountAt(t *testing.T, e *pb.ExecOp, dest string) *pb.Mount {
	t.Helper()
	for _, m := range e.Mounts {
		if m.Dest == dest {
			return m
		}
	}
	t.Fatalf("no mount at %s in %v", dest, e.Mounts)
	return nil
}

func compileParent(t *testing.T, p ocispecs.Platform) (*Image, *fakeResolver) {
	t.Helper()
	r := resolver()
	img, err := Compile(context.Background(), parentPlan(t.TempDir()), p, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	return img, r
}

var amd64 = ocispecs.Platform{OS: "linux", Architecture: "amd64"}

func TestCompileConfig(t *testing.T) {
	img, r := compileParent(t, amd64)
	cfg := img.Config
	wantEnv := []string{
		"PATH=/home/user/.npm-global/bin:/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"A=1",
		`B=x "y" $HOME`,
	}
	if !slices.Equal(cfg.Config.Env, wantEnv) {
		t.Errorf("Env = %q, want %q", cfg.Config.Env, wantEnv)
	}
	if cfg.Config.User != "1000" || cfg.Config.WorkingDir != "/home/user" {
		t.Errorf("User, WorkingDir = %q, %q", cfg.Config.User, cfg.Config.WorkingDir)
	}
	if !slices.Equal(cfg.Config.Cmd, []string{"bash"}) {
		t.Errorf("Cmd = %q, want inherited [bash]", cfg.Config.Cmd)
	}
	if len(cfg.Config.ExposedPorts) != 2 {
		t.Errorf("ExposedPorts = %v", cfg.Config.ExposedPorts)
	}
	for _, p := range []string{"8080/tcp", "9090/tcp"} {
		if _, ok := cfg.Config.ExposedPorts[p]; !ok {
			t.Errorf("ExposedPorts lacks %s", p)
		}
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform = %s/%s", cfg.OS, cfg.Architecture)
	}
	if cfg.Created != nil {
		t.Errorf("Created = %v, want nil (set by the exporter)", cfg.Created)
	}
	// History: the base's entry, then one per layer-producing step (3 bootstrap
	// runs, WORKDIR, 2 runs, 2 copies) plus empty entries for ENV, EXPOSE, USER.
	var layers []string
	var empty int
	for _, h := range cfg.History[1:] {
		if h.EmptyLayer {
			empty++
		} else {
			layers = append(layers, h.CreatedBy)
		}
	}
	wantLayers := []string{"install curl", "install task", "create user", "WORKDIR /home/user",
		"marker: marker: root.yml", "marker: marker: user.yml", "traefik routes", "marker file"}
	if !slices.Equal(layers, wantLayers) {
		t.Errorf("history layers = %q, want %q", layers, wantLayers)
	}
	// ENV A, B, PATH; EXPOSE x2; USER 1000 before user.yml, USER root after, USER 1000 final.
	if empty != 8 {
		t.Errorf("%d empty-layer history entries, want 8: %+v", empty, cfg.History)
	}
	if !slices.Equal(r.calls, []string{debian + " linux/amd64"}) {
		t.Errorf("resolver calls = %q", r.calls)
	}
}

func TestCompileOps(t *testing.T) {
	img, _ := compileParent(t, amd64)
	g := marshal(t, img)

	// Base pinned to the resolved digest, for the target platform.
	chain := g.chain()
	base := g.ops[g.head]
	for base.GetSource() == nil {
		base = g.input(base, 0)
	}
	wantBase := "docker-image://" + debian + "@" + digest.FromString(debian+" linux/amd64").String()
	if id := base.GetSource().Identifier; id != wantBase {
		t.Errorf("base = %s, want %s", id, wantBase)
	}
	if p := base.Platform; p.OS != "linux" || p.Architecture != "amd64" {
		t.Errorf("base platform = %v", p)
	}
	wantChain := []string{
		"[parent] FROM debian:bookworm",
		"[parent] install curl", "[parent] install task", "[parent] create user",
		"[parent] WORKDIR /home/user",
		"[parent marker] marker: root.yml", "[parent marker] marker: user.yml",
		"[parent] traefik routes", "[parent] marker file",
	}
	if !slices.Equal(chain, wantChain) {
		t.Errorf("chain = %q\nwant %q", chain, wantChain)
	}

	// Bootstrap apt run: shell, root, cwd /, default env, locked caches.
	apt := g.named(t, "] install curl").GetExec()
	if want := []string{"/bin/sh", "-c", "apt-get update && apt-get install -y curl"}; !slices.Equal(apt.Meta.Args, want) {
		t.Errorf("args = %q", apt.Meta.Args)
	}
	if apt.Meta.User != "" && apt.Meta.User != "root" {
		t.Errorf("bootstrap user = %q", apt.Meta.User)
	}
	if apt.Meta.Cwd != "/" {
		t.Errorf("bootstrap cwd = %q", apt.Meta.Cwd)
	}
	for dest, id := range map[string]string{"/var/cache/apt": "/apt-cache", "/var/lib/apt": "/apt-lib"} {
		m := mountAt(t, apt, dest)
		if m.MountType != pb.MountType_CACHE || m.CacheOpt.ID != id || m.CacheOpt.Sharing != pb.CacheSharingOpt_LOCKED {
			t.Errorf("cache %s = %+v", dest, m)
		}
		if m.Input != int64(pb.Empty) || m.Selector != "" {
			t.Errorf("unowned cache %s should mount scratch as is: %+v", dest, m)
		}
	}

	// FetchTask: the archive comes from llb.HTTP, pinned, mounted as a file.
	task := g.named(t, "] install task")
	m := mountAt(t, task.GetExec(), plan.TaskArchive)
	if !m.Readonly || m.Selector != "/task.tar.gz" {
		t.Errorf("task mount = %+v", m)
	}
	src := g.input(task, m.Input).GetSource()
	if src.Identifier != "http://127.0.0.1:9/task/task_linux_amd64.tar.gz" {
		t.Errorf("task url = %s", src.Identifier)
	}
	if got := src.Attrs[pb.AttrHTTPChecksum]; got != "sha256:"+strings.Repeat("ab", 32) {
		t.Errorf("task checksum = %q", got)
	}
	if got := src.Attrs[pb.AttrHTTPFilename]; got != "task.tar.gz" {
		t.Errorf("task filename = %q", got)
	}

	// WORKDIR creates the directory as the user in effect (root).
	wd := g.named(t, "] WORKDIR /home/user").GetFile().Actions[0].GetMkdir()
	if wd == nil || wd.Path != "/home/user" || !wd.MakeParents || wd.Mode != 0o755 || wd.Owner != nil {
		t.Errorf("workdir mkdir = %+v", wd)
	}

	// root.yml: root, cwd = workdir, ENV applied, layer files read-only at /ctx.
	root := g.named(t, "marker: root.yml")
	re := root.GetExec()
	if re.Meta.User != "root" && re.Meta.User != "" {
		t.Errorf("root.yml user = %q", re.Meta.User)
	}
	if re.Meta.Cwd != "/home/user" {
		t.Errorf("root.yml cwd = %q", re.Meta.Cwd)
	}
	for _, e := range []string{"A=1", `B=x "y" $HOME`, "PATH=/home/user/.npm-global/bin:/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"} {
		if !slices.Contains(re.Meta.Env, e) {
			t.Errorf("root.yml env %q lacks %q", re.Meta.Env, e)
		}
	}
	cm := mountAt(t, re, "/ctx")
	if !cm.Readonly || cm.Selector != "" || cm.MountType != pb.MountType_BIND {
		t.Errorf("/ctx mount = %+v", cm)
	}
	local := g.input(root, cm.Input).GetSource()
	if local.Identifier != "local://layer-marker" || local.Attrs[pb.AttrSharedKeyHint] == "" {
		t.Errorf("layer context = %+v", local)
	}

	// user.yml: runs as the UID; its cache dir is created owned by uid:gid.
	user := g.named(t, "marker: user.yml")
	ue := user.GetExec()
	if ue.Meta.User != "1000" {
		t.Errorf("user.yml user = %q", ue.Meta.User)
	}
	nm := mountAt(t, ue, "/home/user/.cache/npm")
	if nm.CacheOpt.ID != "/npm-1000" || nm.CacheOpt.Sharing != pb.CacheSharingOpt_SHARED || nm.Selector != "/cache" {
		t.Errorf("npm cache = %+v", nm)
	}
	mk := g.input(user, nm.Input).GetFile().Actions[0].GetMkdir()
	if mk.Path != "/cache" || mk.Owner.User.GetByID() != 1000 || mk.Owner.Group.GetByID() != 1000 {
		t.Errorf("cache root = %+v", mk)
	}

	// COPY: frontend copy semantics, chown, dst relative to the workdir.
	cp := g.named(t, "] marker file").GetFile().Actions[0].GetCopy()
	if cp.Src != "/marker.txt" || cp.Dest != "/home/user/share/" || !cp.FollowSymlink || !cp.DirCopyContents ||
		!cp.CreateDestPath || !cp.AllowWildcard || !cp.AllowEmptyWildcard {
		t.Errorf("copy = %+v", cp)
	}
	if cp.Owner.User.GetByID() != 1000 || cp.Owner.Group.GetByID() != 1000 {
		t.Errorf("copy owner = %+v", cp.Owner)
	}
	routes := g.named(t, "] traefik routes")
	if c := routes.GetFile().Actions[0].GetCopy(); c.Src != "/routes.yml" || c.Dest != "/etc/traefik/dynamic/routes.yml" || c.Owner != nil {
		t.Errorf("routes copy = %+v", c)
	}
}

func TestCompileChild(t *testing.T) {
	parent, r := compileParent(t, amd64)
	child, err := Compile(context.Background(), childPlan(), amd64, Options{Resolver: r, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.calls) != 1 {
		t.Errorf("child resolved images: %q", r.calls)
	}
	cfg := child.Config.Config
	wantEnv := []string{
		"PATH=/home/user/.npm-global/bin:/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"A=2", `B=x "y" $HOME`, "C=3",
	}
	if !slices.Equal(cfg.Env, wantEnv) {
		t.Errorf("Env = %q, want %q", cfg.Env, wantEnv)
	}
	if len(cfg.ExposedPorts) != 3 || cfg.WorkingDir != "/home/user" || cfg.User != "1000" {
		t.Errorf("config = %+v", cfg)
	}
	if len(parent.Config.Config.ExposedPorts) != 2 || len(parent.Config.Config.Env) != 3 {
		t.Errorf("compiling the child changed the parent's config: %+v", parent.Config.Config)
	}
	g := marshal(t, child)
	chain := g.chain()
	pchain := marshal(t, parent).chain()
	if !slices.Equal(chain[:len(pchain)], pchain) || chain[len(chain)-1] != "[child tool] tool: root.yml" {
		t.Errorf("child chain = %q", chain)
	}
	tool := g.named(t, "tool: root.yml").GetExec()
	if tool.Meta.User != "root" || tool.Meta.Cwd != "/home/user" || !slices.Contains(tool.Meta.Env, "A=2") {
		t.Errorf("child step meta = %+v", tool.Meta)
	}
	if got := len(child.Config.History) - len(parent.Config.History); got != 6 {
		// ENV A, ENV C, EXPOSE, USER root, run, USER 1000.
		t.Errorf("child added %d history entries", got)
	}

	// Without the compiled parent there is nothing to build on.
	if _, err := Compile(context.Background(), childPlan(), amd64, Options{Resolver: r}); err == nil ||
		!strings.Contains(err.Error(), `parent image "parent" was not compiled`) {
		t.Errorf("missing parent: %v", err)
	}
}

func TestCompileMultiPlatform(t *testing.T) {
	pl := parentPlan(t.TempDir())
	pl.Platforms = []string{"linux/amd64", "linux/arm64"}
	r := resolver()
	arm64 := ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	img, err := Compile(context.Background(), pl, arm64, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	g := marshal(t, img)
	task := g.named(t, "[parent linux/arm64] install task")
	src := g.input(task, mountAt(t, task.GetExec(), plan.TaskArchive).Input).GetSource()
	if src.Identifier != "http://127.0.0.1:9/task/task_linux_arm64.tar.gz" || src.Attrs[pb.AttrHTTPChecksum] != "sha256:"+strings.Repeat("cd", 32) {
		t.Errorf("arm64 task = %+v", src)
	}
	for d, op := range g.ops {
		if op.Platform != nil && op.Platform.Architecture != "arm64" {
			t.Errorf("%s runs on %v", g.names[d], op.Platform)
		}
	}
	if img.Config.Architecture != "arm64" || !slices.Equal(r.calls, []string{debian + " linux/arm64"}) {
		t.Errorf("arch %s, resolved %q", img.Config.Architecture, r.calls)
	}
}

func TestCompileUnpinnedTask(t *testing.T) {
	r := resolver()
	pl := parentPlan(t.TempDir())
	pl.Task = plan.TaskSource{URL: "http://mirror/task"}
	img, err := Compile(context.Background(), pl, amd64, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	g := marshal(t, img)
	task := g.named(t, "] install task")
	src := g.input(task, mountAt(t, task.GetExec(), plan.TaskArchive).Input).GetSource()
	if src.Identifier != "http://mirror/task/task_linux_amd64.tar.gz" {
		t.Errorf("url = %s", src.Identifier)
	}
	if _, ok := src.Attrs[pb.AttrHTTPChecksum]; ok {
		t.Errorf("unpinned source has a checksum: %v", src.Attrs)
	}
}

func TestCompileBaseWithoutPath(t *testing.T) {
	r := resolver()
	cfg := debianConfig()
	cfg.Config.Env = []string{"LANG=C.UTF-8"}
	cfg.Config.WorkingDir = "/srv"
	cfg.Config.User = "nobody"
	cfg.Config.Shell = []string{"/bin/bash", "-ec"}
	r.configs["docker.io/library/odd:1"] = cfg
	pl := &plan.Image{
		Name: "odd", External: "odd:1", Platforms: []string{"linux/amd64"},
		Steps: []plan.Step{{Kind: plan.Run, Desc: "inherit", Shell: "true"}},
	}
	img, err := Compile(context.Background(), pl, amd64, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{"LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if !slices.Equal(img.Config.Config.Env, wantEnv) {
		t.Errorf("Env = %q", img.Config.Config.Env)
	}
	e := marshal(t, img).named(t, "] inherit").GetExec()
	if e.Meta.User != "nobody" || e.Meta.Cwd != "/srv" || !slices.Equal(e.Meta.Args, []string{"/bin/bash", "-ec", "true"}) ||
		!slices.Equal(e.Meta.Env, wantEnv) {
		t.Errorf("inherited meta = %+v", e.Meta)
	}
}

func TestCompilePixiAndSupervisord(t *testing.T) {
	r := resolver()
	r.configs["ghcr.io/prefix-dev/pixi:latest"] = debianConfig()
	pl := parentPlan(t.TempDir())
	pl.Pixi = []plan.PixiStage{{
		Layer: "marker", Stage: "marker-pixi-build", Image: "ghcr.io/prefix-dev/pixi:latest",
		Manifest: "pixi.toml", Files: []string{"pixi.toml", "pixi.lock"}, Workdir: "/home/user", Install: "pixi install", EnvDir: "/home/user/.pixi/envs/default",
		Setup: "apt-get install -y build-essential git",
	}}
	pl.Fragments = []plan.File{{Name: "00-header.conf", Content: []byte("[supervisord]\n")}, {Name: "01-web.conf", Content: []byte("[program:web]\n")}}
	pl.Steps = append(pl.Steps,
		plan.Step{Kind: plan.Copy, Layer: "marker", User: "root", Desc: "pixi env", From: "marker-pixi-build",
			Src: "/home/user/.pixi/envs/default", Dst: "/home/user/.pixi/envs/default", Chown: "1000:1000"},
		plan.Step{Kind: plan.Run, User: "root", Desc: "supervisord.conf", Shell: "cat /fragments/*.conf > /etc/supervisord.conf",
			Mounts: []plan.Mount{{Kind: plan.Bind, Target: "/fragments", From: plan.StageSupervisord, Source: "/fragments"}}},
	)
	img, err := Compile(context.Background(), pl, amd64, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	g := marshal(t, img)
	inst := g.named(t, "[parent marker] pixi pixi install")
	if e := inst.GetExec(); e.Meta.Cwd != "/home/user" || !slices.Equal(e.Meta.Args, []string{"/bin/sh", "-c", "pixi install"}) {
		t.Errorf("pixi install = %+v", e.Meta)
	}
	lock := g.input(inst, 0)
	if c := lock.GetFile().Actions[0].GetCopy(); c.Src != "/pixi.lock" || c.Dest != "/home/user/" {
		t.Errorf("lock copy = %+v", c)
	}
	manifest := g.input(lock, 0)
	if c := manifest.GetFile().Actions[0].GetCopy(); c.Src != "/pixi.toml" || c.Dest != "/home/user/" {
		t.Errorf("manifest copy = %+v", c)
	}
	// The compiler and git come first in the pixi stage, and only there.
	setup := g.named(t, "pixi apt-get install -y build-essential git")
	if g.input(g.input(manifest, 0), 0) != setup {
		t.Errorf("the pixi stage's setup does not precede its WORKDIR and copies")
	}
	for _, n := range g.chain() {
		if strings.Contains(n, "build-essential") {
			t.Errorf("the image's chain runs %q", n)
		}
	}
	env := g.named(t, "] pixi env")
	if c := env.GetFile().Actions[0].GetCopy(); c.Src != "/home/user/.pixi/envs/default" || c.Owner.User.GetByID() != 1000 {
		t.Errorf("env copy = %+v", c)
	}
	sup := g.named(t, "] supervisord.conf")
	fm := mountAt(t, sup.GetExec(), "/fragments")
	if fm.Selector != "/fragments" || !fm.Readonly {
		t.Errorf("fragments mount = %+v", fm)
	}
	last := g.input(sup, fm.Input).GetFile().Actions[0].GetMkfile()
	if last.Path != "/fragments/01-web.conf" || string(last.Data) != "[program:web]\n" {
		t.Errorf("last fragment = %+v", last)
	}
}

func TestCompileErrors(t *testing.T) {
	r := resolver()
	for name, tc := range map[string]struct {
		edit func(*plan.Image)
		want string
	}{
		"unknown stage": {
			edit: func(p *plan.Image) { p.Steps[2].From = "nope" },
			want: `image "parent" (linux/amd64): step "traefik routes": unknown stage "nope"`,
		},
		"unknown mount stage": {
			edit: func(p *plan.Image) { p.Steps[0].Mounts[2].From = "gone" },
			want: `layer "marker", step "marker: root.yml": mount /ctx: unknown stage "gone"`,
		},
		"no task url": {
			edit: func(p *plan.Image) { p.Task = plan.TaskSource{} },
			want: `step "install task": no task download location configured`,
		},
		"bad checksum": {
			edit: func(p *plan.Image) {
				p.Task = plan.TaskSource{URL: "http://x", SHA256: map[string]string{"amd64": "zz"}}
			},
			want: "task sha256 for amd64",
		},
		"missing base": {
			edit: func(p *plan.Image) { p.External = "ghost:1" },
			want: `base "ghost:1": docker.io/library/ghost:1: not found`,
		},
		"no base": {
			edit: func(p *plan.Image) { p.External = "" },
			want: "exactly one of External and Parent",
		},
	} {
		t.Run(name, func(t *testing.T) {
			pl := parentPlan(t.TempDir())
			if tc.edit != nil {
				tc.edit(pl)
			}
			_, err := Compile(context.Background(), pl, amd64, Options{Resolver: r})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	_, err := Compile(context.Background(), parentPlan(t.TempDir()), ocispecs.Platform{OS: "linux", Architecture: "riscv64"}, Options{Resolver: r})
	if err == nil || !strings.Contains(err.Error(), "not linux/riscv64") {
		t.Errorf("riscv64: %v", err)
	}
}

// bootc container lint runs as root, before the final USER, which stays.
func TestCompileLintAsRoot(t *testing.T) {
	parent, r := compileParent(t, amd64)
	pl := childPlan()
	pl.Lint = &plan.Step{Kind: plan.Run, User: "root", Shell: "bootc container lint", Desc: "bootc container lint"}
	child, err := Compile(context.Background(), pl, amd64, Options{Resolver: r, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	lint := marshal(t, child).named(t, "bootc container lint").GetExec()
	if lint.Meta.User != "root" {
		t.Errorf("lint runs as %q, want root", lint.Meta.User)
	}
	if u := child.Config.Config.User; u != "1000" {
		t.Errorf("final User %q, want 1000", u)
	}
}

// A child with a user of its own (a CI runner as uid 0): its steps run as
// that user in its home, which ends as its final USER and working directory.
func TestCompileChildOwnUser(t *testing.T) {
	parent, r := compileParent(t, amd64)
	pl := childPlan()
	pl.User = spec.User{Name: "root", UID: 0, GID: 0, Home: "/root"}
	pl.Workdir = "/root"
	pl.FinalUser = "0"
	child, err := Compile(context.Background(), pl, amd64, Options{Resolver: r, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := child.Config.Config; cfg.User != "0" || cfg.WorkingDir != "/root" {
		t.Errorf("config User %q WorkingDir %q, want 0 and /root", cfg.User, cfg.WorkingDir)
	}
	tool := marshal(t, child).named(t, "tool: root.yml").GetExec()
	if tool.Meta.User != "root" || tool.Meta.Cwd != "/root" {
		t.Errorf("child step meta = %+v", tool.Meta)
	}
}

// An explicit epoch reaches every step's environment (as ARG
// SOURCE_DATE_EPOCH gives it to the Containerfile's RUNs), a default one no
// step: it changes with every commit and would rerun them all. Either way
// the exports stamp it, and the image carries its external base's config
// (the parent's for a child) so that the exporter keeps the base's layers.
func TestCompileEpoch(t *testing.T) {
	dir := t.TempDir()
	compile := func(e *plan.Epoch) (*Image, *Image) {
		t.Helper()
		r := resolver()
		pp := parentPlan(dir)
		pp.Epoch = e
		parent, err := Compile(context.Background(), pp, amd64, Options{Resolver: r})
		if err != nil {
			t.Fatal(err)
		}
		cp := childPlan()
		cp.Epoch = e
		child, err := Compile(context.Background(), cp, amd64, Options{Resolver: r, Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		return parent, child
	}
	const env = plan.EpochEnv + "=1700000000"
	parent, child := compile(&plan.Epoch{Unix: 1700000000, Explicit: true})
	if e := marshal(t, child).named(t, "tool: root.yml").GetExec(); !slices.Contains(e.Meta.Env, env) {
		t.Errorf("explicit epoch: child step env %q lacks %s", e.Meta.Env, env)
	}
	if slices.ContainsFunc(child.Config.Config.Env, func(kv string) bool { return strings.HasPrefix(kv, plan.EpochEnv+"=") }) {
		t.Errorf("the epoch entered the image's config env: %q", child.Config.Config.Env)
	}
	if len(parent.BaseConfig) == 0 || !bytes.Equal(child.BaseConfig, parent.BaseConfig) {
		t.Errorf("base config: parent %d bytes, child %q", len(parent.BaseConfig), child.BaseConfig)
	}

	_, def := compile(&plan.Epoch{Unix: 1700000000})
	for d, op := range marshal(t, def).ops {
		if e := op.GetExec(); e != nil && slices.ContainsFunc(e.Meta.Env, func(kv string) bool { return strings.HasPrefix(kv, plan.EpochEnv+"=") }) {
			t.Errorf("default epoch: step %s sees it: %q", d, e.Meta.Env)
		}
	}
	_, none := compile(nil)
	a, b := marshal(t, def).named(t, "tool: root.yml").GetExec(), marshal(t, none).named(t, "tool: root.yml").GetExec()
	if !slices.Equal(a.Meta.Env, b.Meta.Env) {
		t.Errorf("a default epoch changed a step's env (and its cache key): %q, without %q", a.Meta.Env, b.Meta.Env)
	}

	entries := []client.ExportEntry{{Type: client.ExporterOCI, Attrs: map[string]string{"name": "x"}}, {Type: client.ExporterDocker}}
	got := ExportAttrs(entries, &plan.Image{Epoch: &plan.Epoch{Unix: 42}, Annotations: map[string]string{plan.KeyTitle: "t"}})
	for _, x := range got {
		if x.Attrs["rewrite-timestamp"] != "true" || x.Attrs["source-date-epoch"] != "42" || x.Attrs["annotation-manifest."+plan.KeyTitle] != "t" {
			t.Errorf("%s export attrs %v", x.Type, x.Attrs)
		}
	}
	if got[0].Attrs["name"] != "x" || len(entries[0].Attrs) != 1 {
		t.Errorf("attrs: %v, the caller's changed to %v", got[0].Attrs, entries[0].Attrs)
	}
	// An entry that says itself (export.Encoding clamps on ov's side).
	own := []client.ExportEntry{{Type: client.ExporterOCI, Attrs: map[string]string{"rewrite-timestamp": "false"}}}
	if x := ExportAttrs(own, &plan.Image{Epoch: &plan.Epoch{Unix: 42}})[0]; x.Attrs["rewrite-timestamp"] != "false" || x.Attrs["source-date-epoch"] != "42" {
		t.Errorf("entry with its own rewrite-timestamp: attrs %v", x.Attrs)
	}
	for _, e := range []*plan.Epoch{nil, {Unix: 42, Now: true}} {
		if n := ExportAttrs(entries, &plan.Image{Epoch: e}); n[0].Attrs["rewrite-timestamp"] != "" {
			t.Errorf("epoch %+v: attrs %v", e, n[0].Attrs)
		}
	}
}
