package llb

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var testUser = spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"}

// layerDir writes a layer's files into a fresh directory.
func layerDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, files)
	return dir
}

// debianFamily is a Debian parent (bootstrap with task from the test
// server, a layer with root and user steps) and a child built on it.
func debianFamily(t *testing.T, env *testenv.Env, tag string) []*plan.Image {
	marker := layerDir(t, map[string]string{
		"marker.txt": "installed by root.yml\n",
		"root.yml": "version: '3'\ntasks:\n  install:\n    cmds:\n" +
			"      - mkdir -p /opt/marker\n      - cp marker.txt /opt/marker/root-marker.txt\n",
	})
	ctxMount := plan.Mount{Kind: plan.Bind, Target: "/ctx", From: "marker", Source: "/"}
	parent := &plan.Image{
		Name:      "parent",
		External:  "debian:bookworm",
		Platforms: []string{"linux/amd64"},
		User:      testUser,
		Tags:      []string{tag + "/parent:1", tag + "/parent:latest"},
		Contexts:  []plan.Context{{Layer: "marker", Dir: marker, Rel: "layers/marker"}},
		Task:      plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256},
		Bootstrap: []plan.Step{
			{Kind: plan.FetchTask, User: "root", Desc: "bootstrap: install task",
				Shell: "tar -xzf " + plan.TaskArchive + " -C /usr/local/bin --no-same-owner task"},
			{Kind: plan.Run, User: "root", Desc: "bootstrap: user",
				Shell: "getent passwd 1000 || useradd -m -u 1000 -s /bin/bash user"},
		},
		Workdir:    "/home/user",
		Env:        []plan.EnvVar{{Key: "OV_A", Value: `say "hi" $HOME`}},
		PathAppend: []string{"/home/user/.local/bin"},
		Expose:     []int{8080},
		Steps: []plan.Step{
			{Kind: plan.Run, Layer: "marker", User: "root", Desc: "marker: root.yml",
				Shell: "cd /ctx && task -t root.yml install", Mounts: []plan.Mount{ctxMount}},
			{Kind: plan.Run, Layer: "marker", User: "1000", Desc: "marker: user step",
				Shell:  `mkdir -p "$HOME/.config/marker" && id -u > "$HOME/.config/marker/uid" && ls -ld "$HOME/.cache/npm" | cut -d " " -f 3 > "$HOME/cache-owner"`,
				Mounts: []plan.Mount{{Kind: plan.Cache, Target: "/home/user/.cache/npm", ID: "ov-test-npm-1000", Owned: true, UID: 1000, GID: 1000}}},
		},
		FinalUser: "1000",
	}
	child := &plan.Image{
		Name:       "child",
		Parent:     "parent",
		ParentRef:  tag + "/parent:latest",
		Platforms:  []string{"linux/amd64"},
		User:       testUser,
		Tags:       []string{tag + "/child:latest"},
		Env:        []plan.EnvVar{{Key: "OV_C", Value: "child"}},
		PathAppend: []string{"/opt/child/bin"},
		Steps: []plan.Step{
			{Kind: plan.Run, Layer: "tool", User: "root", Desc: "tool: root.yml", Shell: "echo child > /child.txt && id -u >> /child.txt"},
		},
		FinalUser: "1000",
	}
	return []*plan.Image{parent, child}
}

// busybox is a two-platform image recording the architecture it ran on.
func busybox(steps ...plan.Step) *plan.Image {
	if len(steps) == 0 {
		steps = []plan.Step{{Kind: plan.Run, Layer: "arch", User: "root", Desc: "arch: root.yml", Shell: "uname -m > /arch.txt"}}
	}
	return &plan.Image{
		Name:      "bb",
		External:  "busybox:latest",
		Platforms: []string{"linux/amd64", "linux/arm64"},
		Tags:      []string{"ov.test/bb:latest"},
		Steps:     steps,
	}
}

// entry is one path of a flattened image filesystem.
type entry struct {
	typ      byte
	mode     int64
	uid, gid int
	link     string
	data     string // regular files under 64 KiB
}

func flatten(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		e := entry{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, link: h.Linkname}
		if h.Typeflag == tar.TypeReg && h.Size < 64<<10 {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			e.data = string(b)
		}
		out["/"+strings.TrimPrefix(filepath.Clean("/"+h.Name), "/")] = e
	}
}

// layoutImages returns the images of an OCI layout by platform.
func layoutImages(t *testing.T, dir string) map[string]v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Image{}
	var walk func(v1.ImageIndex)
	walk = func(idx v1.ImageIndex) {
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range m.Manifests {
			switch {
			case d.MediaType.IsIndex():
				sub, err := idx.ImageIndex(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				walk(sub)
			case d.Annotations["vnd.docker.reference.type"] == "attestation-manifest":
				// provenance (buildx adds it by default), not an image
			case d.MediaType.IsImage():
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				out[cf.OS+"/"+cf.Architecture] = img
			}
		}
	}
	walk(idx)
	return out
}

func configOf(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func TestBuildFamily(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	out := t.TempDir()
	family := debianFamily(t, env, "ov.test")
	var st statusLog
	res, err := Build(context.Background(), c, BuildOptions{
		Family:   family,
		Exporter: export.OCILayout(out),
		Status:   st.channel(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Image != "parent" || res[1].Image != "child" {
		t.Fatalf("results = %+v", res)
	}
	if !slices.Contains(st.names(), "[parent marker] marker: root.yml") {
		t.Errorf("progress lacks the named step: %q", st.names())
	}

	parent := layoutImages(t, filepath.Join(out, "parent"))["linux/amd64"]
	child := layoutImages(t, filepath.Join(out, "child"))["linux/amd64"]
	if parent == nil || child == nil {
		t.Fatalf("layouts: parent %v child %v", parent, child)
	}
	pc := configOf(t, parent).Config
	wantPath := "PATH=/home/user/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if !slices.Equal(pc.Env, []string{wantPath, `OV_A=say "hi" $HOME`}) {
		t.Errorf("parent Env = %q", pc.Env)
	}
	if pc.User != "1000" || pc.WorkingDir != "/home/user" || !slices.Equal(pc.Cmd, []string{"bash"}) {
		t.Errorf("parent User %q WorkingDir %q Cmd %q", pc.User, pc.WorkingDir, pc.Cmd)
	}
	if _, ok := pc.ExposedPorts["8080/tcp"]; !ok || len(pc.ExposedPorts) != 1 {
		t.Errorf("parent ExposedPorts = %v", pc.ExposedPorts)
	}

	fs := flatten(t, parent)
	for p, want := range map[string]entry{
		"/opt/marker/root-marker.txt":   {typ: tar.TypeReg, mode: 0o644, data: "installed by root.yml\n"},
		"/home/user/.config/marker/uid": {typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000, data: "1000\n"},
		"/home/user/cache-owner":        {typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000, data: "user\n"},
		"/home/user":                    {typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
		"/usr/local/bin/task":           {typ: tar.TypeReg, mode: 0o755},
		"/home/user/.config/marker":     {typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
		"/opt/marker":                   {typ: tar.TypeDir, mode: 0o755},
	} {
		got, ok := fs[p]
		if !ok {
			t.Errorf("parent lacks %s", p)
			continue
		}
		if p == "/usr/local/bin/task" {
			got.data = ""
		}
		if got != want {
			t.Errorf("%s = %+v, want %+v", p, got, want)
		}
	}
	// Mount points and the downloaded archive leave nothing behind.
	for _, p := range []string{"/ctx", plan.TaskArchive} {
		if _, ok := fs[p]; ok {
			t.Errorf("parent has %s", p)
		}
	}

	cc := configOf(t, child).Config
	wantEnv := []string{"PATH=/opt/child/bin:" + strings.TrimPrefix(wantPath, "PATH="), `OV_A=say "hi" $HOME`, "OV_C=child"}
	if !slices.Equal(cc.Env, wantEnv) || cc.User != "1000" || cc.WorkingDir != "/home/user" {
		t.Errorf("child config = %+v", cc)
	}
	cfs := flatten(t, child)
	if got := cfs["/child.txt"].data; got != "child\n0\n" {
		t.Errorf("child.txt = %q (the child's step runs as root)", got)
	}
	if cfs["/opt/marker/root-marker.txt"].data == "" {
		t.Error("child lacks the parent's files")
	}
	// The child is the parent plus its own layer, not a rebuild.
	pl, _ := parent.Layers()
	cl, _ := child.Layers()
	if len(cl) != len(pl)+1 {
		t.Fatalf("child has %d layers, parent %d", len(cl), len(pl))
	}
	for i := range pl {
		a, _ := pl[i].Digest()
		b, _ := cl[i].Digest()
		if a != b {
			t.Errorf("layer %d differs: parent %s child %s", i, a, b)
		}
	}
	// History: one non-empty entry per layer, readable.
	var created []string
	for _, h := range configOf(t, child).History {
		if !h.EmptyLayer {
			created = append(created, h.CreatedBy)
		}
	}
	if len(created) != len(cl) || created[len(created)-1] != "tool: tool: root.yml" {
		t.Errorf("child history = %q (%d layers)", created, len(cl))
	}

	// Tags go into the layout's index.
	idx, err := layout.ImageIndexFromPath(filepath.Join(out, "parent"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	var names []string
	for _, d := range m.Manifests {
		names = append(names, d.Annotations["io.containerd.image.name"])
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"docker.io/ov.test/parent:1", "docker.io/ov.test/parent:latest"}) &&
		!slices.Equal(names, []string{"ov.test/parent:1", "ov.test/parent:latest"}) {
		t.Errorf("index names = %q", names)
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, ".*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %q", leftovers)
	}
}

func TestBuildMultiPlatform(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	out := t.TempDir()
	if _, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{busybox()}, Exporter: export.OCILayout(out)}); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(out, "bb"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("layout should hold one multi-platform index: %+v", m.Manifests)
	}
	sub, _ := idx.ImageIndex(m.Manifests[0].Digest)
	sm, _ := sub.IndexManifest()
	var ps []string
	for _, d := range sm.Manifests {
		if d.Platform != nil && d.Annotations["vnd.docker.reference.type"] == "" {
			ps = append(ps, d.Platform.OS+"/"+d.Platform.Architecture)
		}
	}
	slices.Sort(ps)
	if !slices.Equal(ps, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("index platforms = %q", ps)
	}
	imgs := layoutImages(t, filepath.Join(out, "bb"))
	for p, want := range map[string]string{"linux/amd64": "x86_64\n", "linux/arm64": "aarch64\n"} {
		img := imgs[p]
		if img == nil {
			t.Errorf("no %s image", p)
			continue
		}
		if got := flatten(t, img)["/arch.txt"].data; got != want {
			t.Errorf("%s: arch.txt = %q, want %q", p, got, want)
		}
	}

	// A rebuild into the same place reuses the blobs it still references
	// (hard links, not rewritten) and drops the ones it does not.
	blobs := filepath.Join(out, "bb", "blobs", "sha256")
	before := inodes(t, blobs)
	garbage := filepath.Join(blobs, strings.Repeat("0", 64))
	if err := os.WriteFile(garbage, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{busybox()}, Exporter: export.OCILayout(out)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(garbage); !os.IsNotExist(err) {
		t.Errorf("unreferenced blob kept: %v", err)
	}
	after := inodes(t, blobs)
	var reused int
	for name, ino := range before {
		if after[name] == ino {
			reused++
		}
	}
	if reused < len(before)-2 || len(after) != len(before) { // the index and its manifest may be new
		t.Errorf("%d of %d blobs reused, %d after", reused, len(before), len(after))
	}
	if got := layoutImages(t, filepath.Join(out, "bb")); len(got) != 2 {
		t.Errorf("rebuilt layout has %d images", len(got))
	}

	// --platform narrows.
	out2 := t.TempDir()
	arm := ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	res, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{busybox()}, Platforms: []ocispecs.Platform{arm}, Exporter: export.OCILayout(out2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Platforms) != 1 || res[0].Platforms[0].Architecture != "arm64" {
		t.Errorf("narrowed platforms = %v", res[0].Platforms)
	}
	if got := layoutImages(t, filepath.Join(out2, "bb")); len(got) != 1 || got["linux/arm64"] == nil {
		t.Errorf("narrowed layout = %v", got)
	}
}

func TestBuildFailingStep(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	out := t.TempDir()
	img := busybox(plan.Step{Kind: plan.Run, Layer: "broken", User: "root", Desc: "broken: root.yml",
		Shell: "echo first line; echo 'the reason it broke' >&2; exit 3"})
	img.Platforms = []string{"linux/amd64"}
	_, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.OCILayout(out)})
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a StepError", err, err)
	}
	if se.Image != "bb" || se.Layer != "broken" || se.Step != "broken: root.yml" {
		t.Errorf("step error names %q %q %q", se.Image, se.Layer, se.Step)
	}
	msg := err.Error()
	for _, want := range []string{`image "bb", layer "broken", step "broken: root.yml"`, "exit code: 3", "first line", "the reason it broke"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	assertEmpty(t, out)

	// Other targets still build and export.
	good := busybox()
	good.Name, good.Platforms = "good", []string{"linux/amd64"}
	res, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{img, good}, Exporter: export.OCILayout(out)})
	if !errors.As(err, &se) || len(res) != 1 || res[0].Image != "good" {
		t.Fatalf("results %+v, err %v", res, err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 || ents[0].Name() != "good" {
		t.Errorf("output holds %v", ents)
	}
}

func TestBuildMissingBase(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	out := t.TempDir()
	img := busybox()
	img.External = "ovtest/no-such-image:1"
	_, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.OCILayout(out)})
	if err == nil || !strings.Contains(err.Error(), `image "bb"`) || !strings.Contains(err.Error(), `base "ovtest/no-such-image:1"`) {
		t.Fatalf("err = %v", err)
	}
	assertEmpty(t, out)
}

func TestBuildCancel(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	out := t.TempDir()
	img := busybox(plan.Step{Kind: plan.Run, Layer: "slow", User: "root", Desc: "slow: sleep",
		Shell: "sleep 120; echo " + fmt.Sprint(time.Now().UnixNano())})
	img.Platforms = []string{"linux/amd64"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	log := &statusLog{onVertex: func(v *client.Vertex) {
		if v.Started != nil && strings.HasSuffix(v.Name, "slow: sleep") {
			once.Do(func() { close(started) })
		}
	}}
	go func() {
		<-started
		time.Sleep(time.Second) // well into the step
		cancel()
	}()
	start := time.Now()
	_, err := Build(ctx, c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.OCILayout(out), Status: log.channel()})
	if err == nil || !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-started:
	default:
		t.Fatalf("the build ended before the step started: %v", err)
	}
	if d := time.Since(start); d > 100*time.Second {
		t.Errorf("cancel took %s", d)
	}
	assertEmpty(t, out)
}

// assertEmpty checks that a failed build left no output behind.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestBuildOCIArchive(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "bb.tar")
	img := busybox()
	img.Platforms = []string{"linux/arm64"}
	if _, err := Build(context.Background(), c, BuildOptions{
		Family:   []*plan.Image{img},
		Exporter: export.OCIArchive(func(*plan.Image) string { return file }),
	}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries", len(ents))
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if !slices.Contains(names, "index.json") || !slices.Contains(names, "oci-layout") {
		t.Errorf("archive entries = %q", names)
	}
}

// countingRegistry is a loopback registry (plain HTTP to buildkitd, being
// 127.0.0.1) that counts blob uploads per digest and blob reads.
type countingRegistry struct {
	mu      sync.Mutex
	uploads map[string]int
	reads   []string
	host    string
}

func newCountingRegistry(t *testing.T) *countingRegistry {
	r := &countingRegistry{uploads: map[string]int{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") {
			r.uploads[req.URL.Query().Get("digest")]++
		}
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			r.reads = append(r.reads, req.URL.Path)
		}
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func TestBuildPushFamily(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	reg := newCountingRegistry(t)
	family := debianFamily(t, env, reg.host+"/ov")
	if _, err := Build(context.Background(), c, BuildOptions{Family: family, Exporter: export.Push(), WaitForParents: true}); err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	uploads, reads := reg.uploads, reg.reads
	reg.mu.Unlock()
	for d, n := range uploads {
		if n > 1 {
			t.Errorf("blob %s uploaded %d times", d, n)
		}
	}
	if len(uploads) == 0 {
		t.Error("nothing was uploaded")
	}
	if len(reads) > 0 {
		t.Errorf("the build read blobs back from the registry: %q", reads)
	}
	for _, tag := range []string{"/ov/parent:1", "/ov/parent:latest", "/ov/child:latest"} {
		ref, err := name.ParseReference(reg.host+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		if cf := configOf(t, img); cf.Config.User != "1000" {
			t.Errorf("%s: User = %q", tag, cf.Config.User)
		}
	}
}

func TestBuildLoadPodman(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	store := t.TempDir()
	podman := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}
	img := busybox()
	img.Platforms = []string{"linux/amd64"}
	img.Tags = []string{"localhost/ov-load-test:1"}
	if _, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.Load(engine.Engine{Bin: "podman", Flags: podman})}); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd("podman", append(podman, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}} {{.Config.User}}", "localhost/ov-load-test:1")...)
	if err != nil || out != "linux/amd64 \n" {
		t.Errorf("podman image inspect: %q, %v", out, err)
	}

	// Two platforms cannot be loaded.
	_, err = Build(context.Background(), c, BuildOptions{Family: []*plan.Image{busybox()}, Exporter: export.Load(engine.Engine{Bin: "podman", Flags: podman})})
	if err == nil || !strings.Contains(err.Error(), "one platform") {
		t.Errorf("multi-platform load: %v", err)
	}
}

func inodes(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.Sys().(*syscall.Stat_t).Ino
	}
	return out
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func TestCacheFor(t *testing.T) {
	in := []client.CacheOptionsEntry{
		{Type: "registry", Attrs: map[string]string{"ref": "ghcr.io/o/cache:main", "mode": "max"}},
		{Type: "registry", Attrs: map[string]string{"ref": "ghcr.io/o/cache"}},
		{Type: "local", Attrs: map[string]string{"dest": "/tmp/c"}},
		{Type: "local", Attrs: map[string]string{"src": "/tmp/c"}},
		{Type: "gha", Attrs: map[string]string{"scope": "x"}},
	}
	got := CacheFor(in, "web")
	want := []map[string]string{
		{"ref": "ghcr.io/o/cache:main-web", "mode": "max"},
		{"ref": "ghcr.io/o/cache:web"},
		{"dest": "/tmp/c/web"},
		{"src": "/tmp/c/web"},
		{"scope": "x"},
	}
	for i := range want {
		if got[i].Type != in[i].Type || fmt.Sprint(got[i].Attrs) != fmt.Sprint(want[i]) {
			t.Errorf("%d: %+v, want %v", i, got[i], want[i])
		}
	}
	if in[0].Attrs["ref"] != "ghcr.io/o/cache:main" {
		t.Error("CacheFor changed its input")
	}
}

func TestBuildLocalCache(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	cache := t.TempDir()
	img := busybox()
	img.Platforms = []string{"linux/amd64"}
	_, err := Build(context.Background(), c, BuildOptions{
		Family:       []*plan.Image{img},
		Exporter:     export.OCILayout(t.TempDir()),
		CacheExports: []client.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"dest": cache, "mode": "max"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := layout.ImageIndexFromPath(filepath.Join(cache, "bb")); err != nil {
		t.Fatalf("no cache written for bb: %v", err)
	}
	// With the daemon's cache emptied, the step comes from the imported cache.
	if err := c.Prune(context.Background(), nil, client.PruneAll); err != nil {
		t.Fatal(err)
	}
	log := &statusLog{}
	_, err = Build(context.Background(), c, BuildOptions{
		Family:       []*plan.Image{img},
		Exporter:     export.OCILayout(t.TempDir()),
		CacheImports: []client.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"src": cache}}},
		Status:       log.channel(),
	})
	if err != nil {
		t.Fatal(err)
	}
	hit := false
	for _, v := range log.all() {
		hit = hit || v.Cached && strings.HasSuffix(v.Name, "] arch: root.yml")
	}
	if !hit {
		t.Error("the step ran again instead of coming from the imported cache")
	}
}
