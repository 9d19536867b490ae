package pod

// Real containers: a private dockerd and podman store (env_test.go) and an
// image with supervisord and python3 made from Debian packages
// (testimage_test.go). systemd is not exercised for real: the machine's
// PID 1 is not systemd, so systemctl/loginctl calls go to a recording
// runner while docker and podman run for real.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overthink/ov/engine"
)

// workspace makes a host directory the image's uid 1000 can read.
func workspace(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from the workspace\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// getUntil polls url until it answers 200 (the service needs a moment to
// start) and returns the body.
func getUntil(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(body)
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

func TestE2EShell(t *testing.T) {
	img := testImage(t)
	ws := workspace(t, "my project") // a space in the path
	ctx := context.Background()
	var out, errOut bytes.Buffer
	h := &Host{Runner: engine.ExecRunner{}, Engine: engine.Docker, Stdout: &out, Stderr: &errOut}

	// No stdin (as in CI): output and exit code come through unchanged.
	code, err := h.Shell(ctx, img, ws, "id -u; id -g; pwd; cat hello.txt; echo to-stderr >&2; exit 7")
	if err != nil || code != 7 {
		t.Fatalf("shell: code %d, err %v, stderr %s", code, err, errOut.String())
	}
	if want := "1000\n1000\n/workspace\nhello from the workspace\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if errOut.String() != "to-stderr\n" {
		t.Errorf("stderr %q", errOut.String())
	}

	// Piped stdin reaches the command.
	out.Reset()
	h.Stdin = strings.NewReader("piped input\n")
	if code, err := h.Shell(ctx, img, ws, "tr a-z A-Z"); err != nil || code != 0 || out.String() != "PIPED INPUT\n" {
		t.Errorf("piped: code %d, err %v, out %q", code, err, out.String())
	}
	h.Stdin = nil

	// uid 0 is root, and the workspace is writable through the mount.
	root := img
	root.UID, root.GID = 0, 0
	out.Reset()
	if code, err := h.Shell(ctx, root, ws, "id -u && touch /workspace/made-inside"); err != nil || code != 0 || out.String() != "0\n" {
		t.Errorf("root: code %d, err %v, out %q", code, err, out.String())
	}
	if _, err := os.Stat(filepath.Join(ws, "made-inside")); err != nil {
		t.Errorf("file made in the container: %v", err)
	}

	// An interactive shell reading a script from stdin.
	out.Reset()
	h.Stdin = strings.NewReader("echo interactive $((6*7))\nexit 3\n")
	if code, err := h.Shell(ctx, img, ws, ""); err != nil || code != 3 || out.String() != "interactive 42\n" {
		t.Errorf("interactive: code %d, err %v, out %q", code, err, out.String())
	}
	h.Stdin = nil

	// A layer's volume: named ov-<image>-<name>, made by the engine on
	// first use from the image's directory (so owned by the user), and
	// kept from one shell to the next.
	img.Volumes = []Volume{{Name: "home", Path: "/home/ov"}}
	keepInVolume(t, h, img, ws, "shell")
	if got := run(t, "docker", "volume", "inspect", "-f", "{{.Name}}", "ov-pod-e2e-home"); got != "ov-pod-e2e-home\n" {
		t.Errorf("docker volume inspect: %q", got)
	}
}

// keepInVolume writes a file into img's first volume in one shell and
// reads it back in another: the second container sees the first one's
// data.
func keepInVolume(t *testing.T, h *Host, img Image, ws, what string) {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	stdout := h.Stdout
	h.Stdout = &out
	defer func() { h.Stdout = stdout }()
	file := img.Volumes[0].Path + "/kept-by-" + what
	if code, err := h.Shell(ctx, img, ws, "id -u > "+file); err != nil || code != 0 {
		t.Fatalf("writing into the volume: code %d, err %v", code, err)
	}
	if code, err := h.Shell(ctx, img, ws, "cat "+file+"; stat -c %u "+img.Volumes[0].Path); err != nil || code != 0 || out.String() != "1000\n1000\n" {
		t.Errorf("reading the volume back: code %d, err %v, out %q", code, err, out.String())
	}
}

func TestE2EStartStop(t *testing.T) {
	img := testImage(t)
	port := freePort(t)
	img.Ports = []string{fmt.Sprintf("%d:%s", port, servicePort)}
	ws := workspace(t, "100% ws")
	ctx := context.Background()
	h := &Host{Runner: engine.ExecRunner{}, Engine: engine.Docker, Stdout: io.Discard, Stderr: io.Discard}
	img.Volumes = []Volume{{Name: "home", Path: "/home/ov"}}
	keepInVolume(t, h, img, ws, "start")

	if err := h.Start(ctx, img, ws); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			h.Stop(ctx, img.Name)
		}
	}()
	if body := getUntil(t, fmt.Sprintf("http://127.0.0.1:%d/hello.txt", port)); body != "hello from the workspace\n" {
		t.Errorf("body %q", body)
	}
	// Published on loopback only, under the documented name.
	if got := strings.TrimSpace(run(t, "docker", "port", "ov-pod-e2e")); got != fmt.Sprintf("%s/tcp -> 127.0.0.1:%d", servicePort, port) {
		t.Errorf("docker port: %q", got)
	}
	// supervisord is the container's command and runs as the image's USER.
	if got := run(t, "docker", "exec", "ov-pod-e2e", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; id -u"); got != "/usr/bin/python3 /usr/bin/supervisord -n -c /etc/supervisord.conf \n1000\n" {
		t.Errorf("pid 1 / user: %q", got)
	}

	// The image's volume is mounted: what a shell left in it is there.
	if got := run(t, "docker", "exec", "ov-pod-e2e", "cat", "/home/ov/kept-by-start"); got != "1000\n" {
		t.Errorf("volume content in the started container: %q", got)
	}

	// A second start fails with docker's reason in the error.
	err := h.Start(ctx, img, ws)
	if err == nil || !strings.Contains(err.Error(), "ov-pod-e2e") || !strings.Contains(err.Error(), "exit status 125") {
		t.Errorf("second start: %v", err)
	}

	if err := h.Stop(ctx, img.Name); err != nil {
		t.Fatal(err)
	}
	stopped = true
	// --rm: the container is gone, not just stopped.
	deadline := time.Now().Add(30 * time.Second)
	for strings.TrimSpace(run(t, "docker", "ps", "-aq", "--filter", "name=^ov-pod-e2e$")) != "" {
		if time.Now().After(deadline) {
			t.Fatal("container still there after ov stop")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := h.Stop(ctx, img.Name); err == nil || !strings.Contains(err.Error(), "No such container") {
		t.Errorf("stopping again: %v", err)
	}
}

// recordingRunner runs docker and podman for real and answers everything
// else (systemctl, loginctl) from replies, recording both.
type recordingRunner struct {
	mu      sync.Mutex
	real    []string
	faked   []string
	replies map[string]reply
}

func (r *recordingRunner) Run(ctx context.Context, argv []string, stdio engine.Stdio) (int, error) {
	key := strings.Join(argv, " ")
	r.mu.Lock()
	if argv[0] == engine.Docker || argv[0] == engine.Podman {
		r.real = append(r.real, key)
		r.mu.Unlock()
		return engine.ExecRunner{}.Run(ctx, argv, stdio)
	}
	r.faked = append(r.faked, key)
	rep := r.replies[key]
	r.mu.Unlock()
	if stdio.Stdout != nil {
		io.WriteString(stdio.Stdout, rep.stdout)
	}
	return rep.code, nil
}

func (r *recordingRunner) reset() (real, faked []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	real, faked = r.real, r.faked
	r.real, r.faked = nil, nil
	// save and load run concurrently; report them in pipeline order.
	for i := 0; i+1 < len(real); i++ {
		if real[i] == "podman load" && strings.HasPrefix(real[i+1], "docker save ") {
			real[i], real[i+1] = real[i+1], real[i]
		}
	}
	return real, faked
}

func TestE2EPodInstallTransfersFromDocker(t *testing.T) {
	img := testImage(t)
	port := freePort(t)
	img.Ports = []string{fmt.Sprintf("%d:%s", port, servicePort)}
	img.Volumes = []Volume{{Name: "home", Path: "/home/ov"}}
	ws := workspace(t, "pod ws")
	ctx := context.Background()
	rec := &recordingRunner{replies: map[string]reply{
		"loginctl show-user tester -p Linger":           {stdout: "Linger=yes\n"},
		"systemctl --user is-active ov-pod-e2e.service": {code: 0},
	}}
	var stderr bytes.Buffer
	h := &Host{Runner: rec, QuadletDir: filepath.Join(t.TempDir(), "containers", "systemd"), User: "tester", Stdout: io.Discard, Stderr: &stderr}

	if code, _ := (engine.ExecRunner{}).Run(ctx, podman.ExistsArgv(img.Ref), engine.Stdio{}); code != 1 {
		t.Fatalf("podman image exists before install: exit %d, want 1", code)
	}
	if err := h.Install(ctx, img, ws); err != nil {
		t.Fatalf("install: %v\n%s", err, stderr.String())
	}
	exists, save, load := "podman image exists "+img.Ref, "docker save "+img.Ref, "podman load"
	real, faked := rec.reset()
	if want := []string{exists, save, load, exists}; !reflect.DeepEqual(real, want) {
		t.Errorf("docker/podman calls %q, want %q", real, want)
	}
	if want := []string{"systemctl --user show-environment", "loginctl show-user tester -p Linger", "systemctl --user daemon-reload"}; !reflect.DeepEqual(faked, want) {
		t.Errorf("systemd calls %q, want %q", faked, want)
	}
	if code, _ := (engine.ExecRunner{}).Run(ctx, podman.ExistsArgv(img.Ref), engine.Stdio{}); code != 0 {
		t.Fatalf("podman image exists after install: exit %d", code)
	}
	got, err := os.ReadFile(filepath.Join(h.QuadletDir, "ov-pod-e2e.container"))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := Quadlet(img, ws); !bytes.Equal(got, want) {
		t.Errorf("quadlet:\n%s\nwant:\n%s", got, want)
	}

	// Installed again: podman has the image, nothing is copied.
	if err := h.Install(ctx, img, ws); err != nil {
		t.Fatal(err)
	}
	if real, _ := rec.reset(); !reflect.DeepEqual(real, []string{exists}) {
		t.Errorf("second install ran %q", real)
	}

	// Update always copies, and restarts the running service.
	if err := h.Update(ctx, img); err != nil {
		t.Fatal(err)
	}
	real, faked = rec.reset()
	if want := []string{save, load, exists}; !reflect.DeepEqual(real, want) {
		t.Errorf("update docker/podman calls %q, want %q", real, want)
	}
	if want := []string{"systemctl --user show-environment", "systemctl --user daemon-reload", "systemctl --user is-active ov-pod-e2e.service", "systemctl --user restart ov-pod-e2e.service"}; !reflect.DeepEqual(faked, want) {
		t.Errorf("update systemd calls %q, want %q", faked, want)
	}

	// What the quadlet would run, run by podman with the same flags as
	// `ov start`: the copied image works and serves the workspace.
	ph := &Host{Runner: engine.ExecRunner{}, Engine: engine.Podman, Stdout: io.Discard, Stderr: io.Discard}
	if err := ph.Start(ctx, img, ws); err != nil {
		t.Fatal(err)
	}
	defer ph.Stop(ctx, img.Name)
	if body := getUntil(t, fmt.Sprintf("http://127.0.0.1:%d/hello.txt", port)); body != "hello from the workspace\n" {
		t.Errorf("body %q", body)
	}
	if err := ph.Stop(ctx, img.Name); err != nil {
		t.Error(err)
	}
	var out bytes.Buffer
	ph.Stdout = &out
	if code, err := ph.Shell(ctx, img, ws, "id -u; cat hello.txt; exit 4"); err != nil || code != 4 || out.String() != "1000\nhello from the workspace\n" {
		t.Errorf("podman shell: code %d, err %v, out %q", code, err, out.String())
	}
	// podman makes and keeps the image's volume too.
	keepInVolume(t, ph, img, ws, "podman")
	if got := run(t, "podman", "volume", "inspect", "--format", "{{.Name}}", "ov-pod-e2e-home"); got != "ov-pod-e2e-home\n" {
		t.Errorf("podman volume inspect: %q", got)
	}

	if err := h.Uninstall(ctx, img.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.QuadletDir, "ov-pod-e2e.container")); !os.IsNotExist(err) {
		t.Errorf("quadlet after uninstall: %v", err)
	}
}
