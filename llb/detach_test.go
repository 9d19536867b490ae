package llb

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
)

func detachStep(layer, shell string) plan.Step {
	return plan.Step{Kind: plan.Run, Layer: layer, User: "root", Desc: layer + ": root.yml", Shell: shell, Detach: true}
}

// opsOf counts a definition's op kinds and collects exec commands.
func opsOf(t *testing.T, st bk.State) (merges, diffs int, execs []string) {
	t.Helper()
	def, err := st.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		switch o := op.Op.(type) {
		case *pb.Op_Merge:
			merges++
		case *pb.Op_Diff:
			diffs++
		case *pb.Op_Exec:
			execs = append(execs, o.Exec.Meta.Args[len(o.Exec.Meta.Args)-1])
		}
	}
	return merges, diffs, execs
}

// checkExec is the check's exec op: the last exec of its definition.
func checkExec(t *testing.T, st bk.State) *pb.ExecOp {
	t.Helper()
	def, err := st.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var last *pb.ExecOp
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		if e, ok := op.Op.(*pb.Op_Exec); ok && strings.Contains(e.Exec.Meta.Args[len(e.Exec.Meta.Args)-1], "writes 0 ") {
			last = e.Exec
		}
	}
	if last == nil {
		t.Fatal("no check exec")
	}
	return last
}

// TestCompileDetached: detached groups become diffs merged onto the chain;
// Linear and Attach keep them in it; a group on an attached layer's
// dependency attaches too.
func TestCompileDetached(t *testing.T) {
	img := busybox(
		detachStep("a", "echo a > /a"),
		plan.Step{Kind: plan.Run, Layer: "pkg", User: "root", Desc: "pkg: packages", Shell: "echo pkg > /pkg"},
		detachStep("b", "echo b > /b"),
		detachStep("c", "cat /a > /c"),
	)
	img.Depends = map[string][]string{"c": {"a"}}
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	compile := func(o Options) *Image {
		o.Resolver = &fakeResolver{configs: map[string]dockerspec.DockerOCIImage{"docker.io/library/busybox:latest": debianConfig()}}
		out, err := Compile(context.Background(), img, p, o)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	out := compile(Options{})
	merges, diffs, execs := opsOf(t, out.State)
	// Groups a, b, c; c's foundation merges a's diff; the final merge; one
	// diff per group and one per attached stretch.
	if merges != 2 || diffs != 4 {
		t.Errorf("detached: %d merges, %d diffs; want 2, 4", merges, diffs)
	}
	if len(out.Checks) != 1 || out.Checks[0].Image != "bb" {
		t.Fatalf("checks = %+v", out.Checks)
	}
	_, _, checkExecs := opsOf(t, out.Checks[0].State)
	script := checkExecs[len(checkExecs)-1]
	for _, want := range []string{"writes 0 ", "writes 2 ", "/.ov-check/end a\n", `U["0 1"] = 1`, `U["1 2"] = 1`, `L[2] = "c"`} {
		if !strings.Contains(script, want) {
			t.Errorf("check script lacks %q", want)
		}
	}
	if strings.Contains(script, `U["0 2"]`) || strings.Contains(script, "after 1 ") || strings.Contains(script, "after 2 ") {
		t.Errorf("check compares c with a, which it depends on, or b with the chain before it:\n%s", script)
	}
	// Content-based cache keys would have BuildKit checksum every file of
	// every mounted snapshot (the whole chain) before looking the check up.
	for _, m := range checkExec(t, out.Checks[0].State).Mounts {
		if m.Readonly && m.ContentCache != pb.MountContentCache_OFF {
			t.Errorf("check mount %s: content cache %v, want OFF", m.Dest, m.ContentCache)
		}
	}
	for _, want := range []string{"echo a > /a", "echo pkg > /pkg", "echo b > /b", "cat /a > /c"} {
		if !slices.Contains(execs, want) {
			t.Errorf("no exec %q in %q", want, execs)
		}
	}

	for name, o := range map[string]Options{"linear": {Linear: true}, "attach all": {Attach: map[string]bool{"a": true, "b": true, "c": true}}} {
		out := compile(o)
		if m, d, _ := opsOf(t, out.State); m != 0 || d != 0 || len(out.Checks) != 0 {
			t.Errorf("%s: %d merges, %d diffs, %d checks; want none", name, m, d, len(out.Checks))
		}
	}
	// Attaching c attaches a, which c depends on; b still detaches.
	out = compile(Options{Attach: map[string]bool{"c": true}})
	if m, d, _ := opsOf(t, out.State); m != 1 || d != 3 {
		t.Errorf("attach c: %d merges, %d diffs; want 1, 3 (only b detached)", m, d)
	}
	// c attached and needing every layer before it: the chain must hold b
	// too, so nothing detaches.
	out = compile(Options{Attach: map[string]bool{"c": true}, SeeAll: map[string]bool{"c": true}})
	if m, d, _ := opsOf(t, out.State); m != 0 || d != 0 {
		t.Errorf("attach and see-all c: %d merges, %d diffs; want none", m, d)
	}
	// b needing every layer before it while detached leaves c detached.
	if got := Arrange(img, Options{SeeAll: map[string]bool{"b": true}}); !got.Steps[3].Detach {
		t.Errorf("see-all b attached c: %+v", got.Steps)
	}
}

// TestBuildDetachedFamily builds a parent and a child on it in one build,
// so the child's solve runs the parent's layers and checks alongside the
// parent's own: both must end with the decisions the checks made. rm
// deletes what mk made without depending on it (it fails detached, then
// runs on every layer before it) and also rewrites /etc/shells as w does
// (so it is attached too, and the chain must then hold mk). ul replaces
// ml's symlink without depending on it: it too runs on every layer before
// it, a merge of groups with a deletion among them (the build round after
// a failed step is a new session: in the same one BuildKit released a
// shared result twice and failed the build).
func TestBuildDetachedFamily(t *testing.T) {
	env := testenv.Get(t)
	parent := busybox(
		detachStep("mk", "mkdir -p /opt && echo x > /opt/f"),
		detachStep("other", "echo other > /other.txt"),
		detachStep("rm", "rm /opt/f && echo /bin/rm >> /etc/shells"),
		detachStep("w", "echo /bin/w >> /etc/shells"),
		detachStep("ml", "mkdir -p /opt/l && ln -s /etc/hostname /opt/l/tool"),
		detachStep("ul", "rm -f /opt/l/tool && echo file > /opt/l/tool"),
	)
	parent.Name, parent.Platforms = "parent", []string{"linux/amd64"}
	child := busybox(detachStep("c", "cat /etc/shells > /c.txt"))
	child.Name, child.External, child.Parent, child.Platforms = "child", "", "parent", []string{"linux/amd64"}
	log := &statusLog{}
	out := t.TempDir()
	_, err := Build(context.Background(), env.Client(t), BuildOptions{Family: []*plan.Image{parent, child}, Exporter: export.OCILayout(out), Warn: log.warn})
	all := strings.Join(log.warns(), "\n")
	if err != nil {
		t.Fatalf("build: %v\nnotices:\n%s", err, all)
	}
	for _, want := range []string{`layer "rm" builds on every layer before it: step "rm: root.yml" failed on just the layers it depends on; one of mk, other is missing`,
		`layer "rm" builds attached: /etc/shells is also written by layer "w"`,
		`layer "ul" builds on every layer before it: step "ul: root.yml" failed on just the layers it depends on; one of `} {
		if !strings.Contains(all, want) {
			t.Errorf("no notice %q in:\n%s", want, all)
		}
	}
	if !regexp.MustCompile(`"ul" .*one of [a-z, ]*\bml\b`).MatchString(all) {
		t.Errorf("the ul notice does not name ml:\n%s", all)
	}
	for _, name := range []string{"parent", "child"} {
		fs := flatten(t, layoutImages(t, filepath.Join(out, name))["linux/amd64"])
		if _, ok := fs["/opt/f"]; ok {
			t.Errorf("%s: /opt/f is there: rm's deletion was lost", name)
		}
		if got := fs["/etc/shells"].data; !strings.HasSuffix(got, "/bin/rm\n/bin/w\n") {
			t.Errorf("%s: /etc/shells = %q", name, got)
		}
		if got := fs["/other.txt"].data; got != "other\n" {
			t.Errorf("%s: /other.txt = %q", name, got)
		}
		if got := fs["/opt/l/tool"]; got.typ != tar.TypeReg || got.data != "file\n" {
			t.Errorf("%s: /opt/l/tool = %+v, want the file that replaced the symlink", name, got)
		}
	}
}

// TestBuildDetached builds detached layers on a real buildkitd: a group
// sees its dependencies but not unrelated layers, an edit reruns only the
// edited layer and what depends on it, and two layers rewriting the same
// shared file are caught by the check and built attached, so the result is
// what the Containerfile builds.
func TestBuildDetached(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	ctx := context.Background()

	files := layerDir(t, map[string]string{"v.txt": "one\n"})
	mnt := []plan.Mount{{Kind: plan.Bind, Target: "/ctx", From: "x", Source: "/"}}
	mk := func() *plan.Image {
		x := detachStep("x", "cp /ctx/v.txt /x.txt")
		x.Mounts = mnt
		img := busybox(
			x,
			plan.Step{Kind: plan.Run, Layer: "pkg", User: "root", Desc: "pkg: packages", Shell: "echo pkg > /pkg.txt"},
			detachStep("y", "test ! -e /x.txt && echo alone > /y.txt"), // x is not in y's foundation
			detachStep("z", "cat /x.txt > /z.txt"),                     // z depends on x
			// Both rewrite /etc/shells: a conflict the check must catch.
			detachStep("s1", "echo /bin/s1 >> /etc/shells"),
			detachStep("s2", "echo /bin/s2 >> /etc/shells"),
			// s3 rewrites a file an attached step after it also rewrites.
			detachStep("s3", "echo s3 >> /etc/profile"),
			plan.Step{Kind: plan.Run, Layer: "late", User: "root", Desc: "late: packages", Shell: "echo late >> /etc/profile"},
		)
		img.Platforms = []string{"linux/amd64"}
		img.Contexts = []plan.Context{{Layer: "x", Dir: files}}
		img.Depends = map[string][]string{"z": {"x"}}
		return img
	}
	build := func() (map[string]entry, *statusLog) {
		t.Helper()
		log := &statusLog{}
		out := t.TempDir()
		res, err := Build(ctx, c, BuildOptions{Family: []*plan.Image{mk()}, Exporter: export.OCILayout(out), Status: log.channel(), Warn: log.warn})
		if err != nil {
			t.Fatal(err)
		}
		if got := res[0].Decided["bb"].Attached; !slices.Equal(got, []string{"s1", "s2", "s3"}) {
			t.Errorf("Result.Decided attached %q, want [s1 s2 s3]", got)
		}
		return flatten(t, layoutImages(t, filepath.Join(out, "bb"))["linux/amd64"]), log
	}

	fs, log := build()
	for p, want := range map[string]string{"/x.txt": "one\n", "/pkg.txt": "pkg\n", "/y.txt": "alone\n", "/z.txt": "one\n"} {
		if got := fs[p].data; got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if got := fs["/etc/shells"].data; !strings.Contains(got, "/bin/s1\n/bin/s2\n") {
		t.Errorf("/etc/shells = %q: a detached layer's append was lost", got)
	}
	if got := fs["/etc/profile"].data; !strings.HasSuffix(got, "s3\nlate\n") {
		t.Errorf("/etc/profile = %q: the attached step overwrote a detached layer's change", got)
	}
	warns := log.warns()
	if len(warns) != 3 || !strings.Contains(warns[0], `layer "s1" builds attached: /etc/shells is also written by layer "s2"`) ||
		!strings.Contains(warns[1], `layer "s2" builds attached: /etc/shells is also written by layer "s1"`) ||
		!strings.Contains(warns[2], `layer "s3" builds attached: /etc/profile is also written by an attached step after it`) {
		t.Errorf("warnings = %q", warns)
	}

	// Edit x: x and z rerun, y and pkg come from the cache.
	if err := os.WriteFile(filepath.Join(files, "v.txt"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, log = build()
	if got := fs["/z.txt"].data; got != "two\n" {
		t.Errorf("after the edit /z.txt = %q", got)
	}
	want := map[string]bool{"[bb x] x: root.yml": false, "[bb z] z: root.yml": false, "[bb y] y: root.yml": true, "[bb pkg] pkg: packages": true}
	was := log.cached()
	for name, cached := range want {
		got, ok := was[name]
		if !ok {
			t.Errorf("no vertex %q (have %q)", name, log.names())
			continue
		}
		if got != cached {
			t.Errorf("%q cached = %v, want %v", name, got, cached)
		}
	}
}

// TestVerify: a layer that reads what a layer it does not depend on wrote
// builds differently detached, which no diff shows; Verify finds it, names
// the writers and the depends that fixes it. A deletion that finds nothing
// to delete detached is named by both layers. Layers the check attached
// compare equal.
func TestVerify(t *testing.T) {
	env := testenv.Get(t)
	img := busybox(
		detachStep("w", "mkdir -p /opt && echo w > /opt/w.txt"),
		detachStep("r", "mkdir -p /opt && { cat /opt/w.txt 2>/dev/null || echo none; } > /opt/r.txt"),
		detachStep("mk", "echo x > /mk.txt"),
		detachStep("rmf", "rm -f /mk.txt"),
		detachStep("a1", "echo a1 >> /etc/shared"),
		detachStep("a2", "echo a2 >> /etc/shared"),
	)
	img.Platforms = []string{"linux/amd64"}
	img.Depends = map[string][]string{"rmf": nil}
	log := &statusLog{}
	diffs, err := Verify(context.Background(), env.Client(t), BuildOptions{Family: []*plan.Image{img}, Warn: log.warn}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Difference{}
	for _, d := range diffs {
		got[d.Path] = d
	}
	if len(diffs) != 2 {
		t.Errorf("%d differences, want 2 (/opt/r.txt, /mk.txt): %+v", len(diffs), diffs)
	}
	r := got["/opt/r.txt"]
	if !slices.Equal(r.Writers, []string{"r"}) || r.Fix.Layer != "r" || !slices.Equal(r.Fix.Add, []string{"w"}) || !slices.Equal(r.Fix.Depends, []string{"w"}) {
		t.Errorf("/opt/r.txt: %+v, want written by r, fix r: depends: [w]", r)
	}
	if !strings.HasPrefix(r.Detached, "file ") || r.Detached == r.Chain {
		t.Errorf("/opt/r.txt: detached %q, chain %q", r.Detached, r.Chain)
	}
	m := got["/mk.txt"]
	if !slices.Equal(m.Writers, []string{"mk", "rmf"}) || m.Fix.Layer != "rmf" || !slices.Equal(m.Fix.Depends, []string{"mk"}) || m.Chain != "absent" {
		t.Errorf("/mk.txt: %+v, want written by mk and rmf, fix rmf: depends: [mk]", m)
	}
	if warns := log.warns(); len(warns) != 2 || !strings.Contains(strings.Join(warns, "\n"), `layer "a1" builds attached`) || !strings.Contains(strings.Join(warns, "\n"), "/etc/shared is also written by") {
		t.Errorf("warnings = %q, want a1 and a2 attached", warns)
	}
}

// TestCompileChildOnRun: a child's steps run on its parent's Run (the
// chain's end, then the groups' diffs: BuildKit stacks the chain and
// copies only the groups), and its export starts from the parent's State
// (the layers in step order), with what the child added on top.
func TestCompileChildOnRun(t *testing.T) {
	img := busybox(
		detachStep("a", "echo a > /a"),
		plan.Step{Kind: plan.Run, Layer: "pkg", User: "root", Desc: "pkg: packages", Shell: "echo pkg > /pkg"},
		detachStep("b", "echo b > /b"),
	)
	r := &fakeResolver{configs: map[string]dockerspec.DockerOCIImage{"docker.io/library/busybox:latest": debianConfig()}}
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	parent, err := Compile(context.Background(), img, p, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	run := marshal(t, &Image{State: parent.Run})
	if got := run.names[run.head]; !strings.HasSuffix(got, "] merge for children") {
		t.Fatalf("parent's Run is %q", got)
	}
	// Its first input is the chain's end (the attached steps, a chain
	// BuildKit need not copy), then the groups' diffs in step order.
	m := run.ops[run.head]
	var inputs []string
	for _, in := range m.Inputs {
		inputs = append(inputs, run.names[digest.Digest(in.Digest)])
	}
	if len(inputs) != 3 || !strings.HasSuffix(inputs[0], "pkg: packages") || !strings.HasSuffix(inputs[1], "a linux/amd64] diff") || !strings.HasSuffix(inputs[2], "b linux/amd64] diff") {
		t.Errorf("Run merges %q", inputs)
	}

	for name, steps := range map[string][]plan.Step{
		"detached": {detachStep("c", "echo c > /c")},
		"attached": {{Kind: plan.Run, Layer: "d", User: "root", Desc: "d: root.yml", Shell: "echo d > /d"}},
	} {
		child := &plan.Image{Name: "kid", Parent: "bb", Platforms: []string{"linux/amd64"}, Steps: steps}
		out, err := Compile(context.Background(), child, p, Options{Resolver: r, Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		g := marshal(t, out)
		step := g.named(t, steps[0].Desc)
		if on := g.names[digest.Digest(step.Inputs[0].Digest)]; !strings.HasSuffix(on, "] merge for children") {
			t.Errorf("%s: the child's step runs on %q, not its parent's Run", name, on)
		}
		// The child's merge of its layers, or (attached) of its chain's
		// diff on the parent.
		if head, in := g.names[g.head], g.names[digest.Digest(g.ops[g.head].Inputs[0].Digest)]; !strings.HasPrefix(head, "[kid]") ||
			!strings.HasSuffix(in, "bb linux/amd64] merge layers") {
			t.Errorf("%s: the child's export %q starts from %q, not its parent's State", name, head, in)
		}
	}
}
