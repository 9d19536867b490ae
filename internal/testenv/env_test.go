package testenv_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"

	"github.com/overthink/ov/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return c
}

// mirrored is where a docker.io reference lives in the Env's registry.
func mirrored(t *testing.T, env *testenv.Env, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := name.ParseReference(env.Registry+"/"+r.Context().RepositoryStr()+":"+r.Identifier(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRegistryServesBases(t *testing.T) {
	env := testenv.Get(t)

	deb, err := remote.Image(mirrored(t, env, testenv.Debian), remote.WithContext(ctx(t)))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := testenv.Snap(deb)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(snap.Config.Cmd, " "); got != "bash" {
		t.Errorf("debian Cmd = %q, want bash", got)
	}
	if snap.Platform.Architecture != "amd64" {
		t.Errorf("debian platform = %v", snap.Platform)
	}
	for _, p := range []string{"/etc/debian_version", "/usr/bin/apt-get", "/etc/ssl/certs/ca-certificates.crt", "/etc/apt/sources.list.d/debian.sources"} {
		if _, ok := snap.Files[p]; !ok {
			t.Errorf("debian lacks %s", p)
		}
	}
	if f := snap.Files["/"+testenv.DpkgSpeedup]; f.SHA256 != sha("force-unsafe-io\n") {
		t.Errorf("debian /%s = %+v, want force-unsafe-io as in the published image", testenv.DpkgSpeedup, f)
	}
	if f := snap.Files["/usr/bin/bash"]; f.Type != tar.TypeReg || f.Mode != 0o755 || f.UID != 0 {
		t.Errorf("/usr/bin/bash = %+v, want root-owned 0755 file", f)
	}
	if f := snap.Files["/bin"]; f.Type != tar.TypeSymlink || f.Linkname != "usr/bin" {
		t.Errorf("/bin = %+v, want symlink to usr/bin (merged /usr)", f)
	}
	if f := snap.Files["/tmp"]; f.Mode != 0o1777 {
		t.Errorf("/tmp mode = %o, want 1777", f.Mode)
	}
	if f := snap.Files["/etc/shadow"]; f.Mode != 0o640 || f.GID == 0 {
		t.Errorf("/etc/shadow = %+v, want 0640 group shadow", f)
	}
	cas, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	for _, ca := range cas {
		if _, ok := snap.Files[ca]; !ok {
			t.Errorf("debian lacks host CA %s", ca)
		}
	}
	for p := range snap.Files {
		if strings.HasPrefix(p, "/var/lib/apt/lists/") && strings.Contains(p, "_") {
			t.Errorf("apt list left in image: %s", p)
		}
	}

	idx, err := remote.Index(mirrored(t, env, testenv.Busybox), remote.WithContext(ctx(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		img, err := testenv.FindImage(idx, p)
		if err != nil {
			t.Fatalf("busybox %s: %v", p, err)
		}
		snap, err := testenv.Snap(img)
		if err != nil {
			t.Fatal(err)
		}
		if f := snap.Files["/bin/sh"]; f.Type != tar.TypeSymlink || f.Linkname != "/bin/busybox" {
			t.Errorf("busybox %s /bin/sh = %+v", p, f)
		}
	}
}

// solve runs st on the Env's buildkitd for platform and returns the files
// it wrote to /out.
func solve(t *testing.T, st llb.State, p llb.ConstraintsOpt) map[string]string {
	return exportFiles(t, st, p)
}

// exportFiles solves st and returns its top-level files, trimmed.
func exportFiles(t *testing.T, st llb.State, p llb.ConstraintsOpt) map[string]string {
	t.Helper()
	env := testenv.Get(t)
	def, err := st.Marshal(ctx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = env.Client(t).Solve(ctx(t), def, client.SolveOpt{
		Exports: []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: dir}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = strings.TrimSpace(string(data))
	}
	return out
}

func script(base llb.State, sh string, opts ...llb.RunOption) llb.State {
	opts = append([]llb.RunOption{llb.Args([]string{"/bin/sh", "-c", sh})}, opts...)
	return base.Run(opts...).AddMount("/out", llb.Scratch())
}

func TestBuildkitResolvesDebianThroughMirror(t *testing.T) {
	got := solve(t, script(llb.Image("debian:bookworm"), "cat /etc/debian_version > /out/version; uname -m > /out/arch"), llb.LinuxAmd64)
	if !strings.HasPrefix(got["version"], "12.") || got["arch"] != "x86_64" {
		t.Errorf("debian:bookworm run = %v, want version 12.x on x86_64", got)
	}
}

func TestBuildkitRunsArm64UnderQemu(t *testing.T) {
	got := solve(t, script(llb.Image("busybox:latest"), "uname -m > /out/arch"), llb.LinuxArm64)
	if got["arch"] != "aarch64" {
		t.Errorf("busybox linux/arm64 uname -m = %q, want aarch64", got["arch"])
	}
}

func TestUserBaseResolvesUser(t *testing.T) {
	// The user cannot write the root-owned /out mount: write in $HOME, copy out.
	ran := llb.Image("ovtest/userbase:bookworm").Run(
		llb.Args([]string{"/bin/sh", "-c", `mkdir -p ~/o && cd ~/o && id > id && echo "$HOME" > home && stat -c %u:%g /home/ubuntu > owner`}),
		llb.User("ubuntu")).Root()
	st := llb.Scratch().File(llb.Copy(ran, "/home/ubuntu/o/", "/", &llb.CopyInfo{CopyDirContentsOnly: true}))
	got := exportFiles(t, st, llb.LinuxAmd64)
	if got["id"] != "uid=1000(ubuntu) gid=1000(ubuntu) groups=1000(ubuntu)" || got["home"] != "/home/ubuntu" || got["owner"] != "1000:1000" {
		t.Errorf("user ubuntu in userbase = %v", got)
	}
}

// TestBuildStepsReachNetwork: apt and https work inside build steps on the
// Debian base (proxy CA injected), and the task archive server is reachable
// from them (buildkitd runs steps on the host network).
func TestBuildStepsReachNetwork(t *testing.T) {
	env := testenv.Get(t)
	sh := fmt.Sprintf(`set -e
apt-get update -qq
apt-get install -y -qq --no-install-recommends curl >/dev/null
curl -fsS -o /dev/null https://deb.debian.org/debian/dists/bookworm/Release
curl -fsS %s | sha256sum | cut -d' ' -f1 > /out/tasksum`, env.TaskURL("amd64"))
	got := solve(t, script(llb.Image("debian:bookworm"), sh), llb.LinuxAmd64)
	if got["tasksum"] != env.TaskSHA256["amd64"] {
		t.Errorf("task archive fetched in a build step: sha256 %q, want %s", got["tasksum"], env.TaskSHA256["amd64"])
	}
}

func TestBakeThroughRemoteDriver(t *testing.T) {
	env := testenv.Get(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "Containerfile"), "FROM debian:bookworm\nRUN echo baked > /baked && useradd -u 1234 bob\n")
	write(t, filepath.Join(dir, "docker-bake.hcl"), `target "tiny" {
  context = "."
  dockerfile = "Containerfile"
  platforms = ["linux/amd64"]
}
`)
	dest := filepath.Join(dir, "out.tar")
	out, err := env.Bake(ctx(t), testenv.Bake{
		Dir:     dir,
		Targets: []string{"tiny"},
		Set:     []string{"tiny.output=type=oci,dest=" + dest},
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := testenv.ReadOCI(dest, "linux/amd64")
	if err != nil {
		t.Fatalf("%v\nbake output:\n%s", err, out)
	}
	if f := snap.Files["/baked"]; f.SHA256 != sha("baked\n") {
		t.Errorf("/baked = %+v", f)
	}
	if f := snap.Files["/home"]; f.Type != tar.TypeDir {
		t.Errorf("/home = %+v", f)
	}
	if !strings.Contains(strings.Join(snap.Config.Env, "\n"), "PATH=/usr/local/sbin") || strings.Join(snap.Config.Cmd, " ") != "bash" {
		t.Errorf("config not inherited from debian:bookworm: %+v", snap.Config)
	}
}

func TestTaskArchives(t *testing.T) {
	env := testenv.Get(t)
	if env.TaskVersion == "" {
		t.Fatal("no task version")
	}
	sums := get(t, env.TaskBaseURL+"/task_checksums.txt")
	for _, arch := range testenv.TaskArches {
		body := get(t, env.TaskURL(arch))
		sum := sha(string(body))
		if sum != env.TaskSHA256[arch] {
			t.Errorf("%s: sha256 %s, Env says %s", arch, sum, env.TaskSHA256[arch])
		}
		if !strings.Contains(string(sums), sum+"  "+testenv.TaskArchive(arch)) {
			t.Errorf("task_checksums.txt lacks %s:\n%s", arch, sums)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		h, err := tr.Next()
		if err != nil || h.Name != "task" || h.Mode != 0o755 {
			t.Fatalf("%s archive: first entry %+v, %v; want task 0755", arch, h, err)
		}
		bin, _ := io.ReadAll(tr)
		if arch == "amd64" {
			p := filepath.Join(t.TempDir(), "task")
			write(t, p, string(bin))
			os.Chmod(p, 0o755)
			out, err := exec.Command(p, "--version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), strings.TrimPrefix(env.TaskVersion, "v")) {
				t.Errorf("task --version = %q, %v; want %s", out, err, env.TaskVersion)
			}
		}
	}
}

func TestDockerRunsImageFromBuildkit(t *testing.T) {
	env := testenv.Get(t)
	host, err := env.StartDocker(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	st := llb.Image("busybox:latest").
		Run(llb.Args([]string{"/bin/sh", "-c", "mkdir -p /www && echo served > /www/index.html && echo hello-from-buildkit > /msg"})).Root()
	def, err := st.Marshal(ctx(t), llb.LinuxAmd64)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	const ref = "ovtest/dockerload:latest"
	_, err = env.Client(t).Solve(ctx(t), def, client.SolveOpt{
		Exports: []client.ExportEntry{{
			Type:  client.ExporterDocker,
			Attrs: map[string]string{"name": ref},
			Output: func(map[string]string) (io.WriteCloser, error) {
				return os.Create(tarPath)
			},
		}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	docker := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx(t), "docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	docker("load", "-i", tarPath)
	// The output is only the command's: no "WARNING: IPv4 forwarding is
	// disabled" from the daemon (it turns forwarding on itself).
	if got := docker("run", "--rm", ref, "cat", "/msg"); got != "hello-from-buildkit" {
		t.Errorf("docker run = %q", got)
	}

	// Ports publish on 127.0.0.1 (docker-proxy), as ov shell/start use them.
	id := docker("run", "-d", "--rm", "-p", "127.0.0.1::80", ref, "httpd", "-f", "-p", "80", "-h", "/www")
	t.Cleanup(func() { exec.Command("docker", "-H", host, "rm", "-f", id).Run() })
	hostPort := docker("port", id, "80/tcp")
	var body []byte
	for i := 0; i < 50; i++ {
		if body, err = tryGet("http://" + strings.Split(hostPort, "\n")[0] + "/index.html"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if string(body) != "served\n" {
		t.Errorf("published port %s: %q, %v", hostPort, body, err)
	}

	// docker.io pulls go to the Env's registry.
	docker("pull", "busybox:latest")
	if got := docker("run", "--rm", "busybox:latest", "uname", "-m"); got != "x86_64" {
		t.Errorf("pulled busybox uname -m = %q", got)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	b, err := tryGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tryGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}
