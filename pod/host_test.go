package pod

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/overthink/ov/engine"
)

type reply struct {
	code           int
	stdout, stderr string
	err            error
}

// fakeRunner records argv and answers from a script: replies[argv] is
// used in order, its last entry repeating; anything unscripted exits 0.
// `podman load` records what it read on stdin.
type fakeRunner struct {
	mu      sync.Mutex
	calls   []string
	replies map[string][]reply
	loaded  []string
}

func (f *fakeRunner) Run(_ context.Context, argv []string, stdio engine.Stdio) (int, error) {
	key := strings.Join(argv, " ")
	f.mu.Lock()
	f.calls = append(f.calls, key)
	r := reply{}
	if rs := f.replies[key]; len(rs) > 0 {
		r = rs[0]
		if len(rs) > 1 {
			f.replies[key] = rs[1:]
		}
	}
	f.mu.Unlock()
	if key == "podman load" && stdio.Stdin != nil {
		b, _ := io.ReadAll(stdio.Stdin)
		f.mu.Lock()
		f.loaded = append(f.loaded, string(b))
		f.mu.Unlock()
	}
	if stdio.Stdout != nil {
		io.WriteString(stdio.Stdout, r.stdout)
	}
	if stdio.Stderr != nil {
		io.WriteString(stdio.Stderr, r.stderr)
	}
	return r.code, r.err
}

func newFakeHost(t *testing.T, replies map[string][]reply) (*Host, *fakeRunner, *bytes.Buffer) {
	f := &fakeRunner{replies: replies}
	var stderr bytes.Buffer
	return &Host{Runner: f, Engine: engine.Docker, QuadletDir: filepath.Join(t.TempDir(), "containers", "systemd"), User: "alice",
		Stdout: io.Discard, Stderr: &stderr}, f, &stderr
}

func wantCalls(t *testing.T, f *fakeRunner, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(f.calls, "\n  "), strings.Join(want, "\n  "))
	}
}

const (
	ref        = "ghcr.io/atrawog/fedora-test:latest"
	showEnv    = "systemctl --user show-environment"
	linger     = "loginctl show-user alice -p Linger"
	exists     = "podman image exists " + ref
	save       = "docker save " + ref
	load       = "podman load"
	reload     = "systemctl --user daemon-reload"
	isActive   = "systemctl --user is-active ov-fedora-test.service"
	restart    = "systemctl --user restart ov-fedora-test.service"
	stopUnit   = "systemctl --user stop ov-fedora-test.service"
	noBusError = "Failed to connect to bus: No medium found\n"
)

var lingerOn = []reply{{stdout: "Linger=yes\n"}}

func TestInstallTransfersWhenPodmanLacksImage(t *testing.T) {
	h, f, stderr := newFakeHost(t, map[string][]reply{
		linger: lingerOn,
		exists: {{code: 1}, {code: 0}},
		save:   {{stdout: "IMAGE-TAR"}},
		load:   {{stdout: "Loaded image: " + ref + "\n"}},
	})
	if err := h.Install(context.Background(), testImg, "/home/user/project"); err != nil {
		t.Fatal(err)
	}
	// save and load run concurrently: compare them as a set.
	got := f.calls
	if len(got) == 7 && got[3] == load && got[4] == save {
		got[3], got[4] = got[4], got[3]
	}
	wantCalls(t, f, showEnv, linger, exists, save, load, exists, reload)
	if !reflect.DeepEqual(f.loaded, []string{"IMAGE-TAR"}) {
		t.Errorf("podman load read %q", f.loaded)
	}
	text, err := os.ReadFile(filepath.Join(h.QuadletDir, "ov-fedora-test.container"))
	if err != nil {
		t.Fatal(err)
	}
	golden, _ := os.ReadFile("testdata/fedora-test.golden")
	if !bytes.Equal(text, golden) {
		t.Errorf("quadlet:\n%s", text)
	}
	if !strings.Contains(stderr.String(), "ov pod start fedora-test") || strings.Contains(stderr.String(), "warning") {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestInstallSkipsTransferWhenPodmanHasImage(t *testing.T) {
	h, f, stderr := newFakeHost(t, map[string][]reply{linger: {{code: 1, stderr: "User alice is not logged in or lingering"}}})
	if err := h.Install(context.Background(), testImg, "/w"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, showEnv, linger, exists, reload)
	if !strings.Contains(stderr.String(), "warning: lingering is off for user alice") || !strings.Contains(stderr.String(), "loginctl enable-linger alice") {
		t.Errorf("want a linger warning, stderr: %s", stderr)
	}
}

func TestInstallWithoutUserSessionChangesNothing(t *testing.T) {
	h, f, _ := newFakeHost(t, map[string][]reply{showEnv: {{code: 1, stderr: noBusError}}})
	err := h.Install(context.Background(), testImg, "/w")
	if err == nil || !strings.Contains(err.Error(), "no systemd user session") || !strings.Contains(err.Error(), "loginctl enable-linger alice") {
		t.Fatalf("got %v", err)
	}
	wantCalls(t, f, showEnv)
	if _, err := os.Stat(h.QuadletDir); !os.IsNotExist(err) {
		t.Errorf("quadlet dir created: %v", err)
	}
}

func TestInstallReportsBothSidesOfAFailedTransfer(t *testing.T) {
	h, _, _ := newFakeHost(t, map[string][]reply{
		linger: lingerOn,
		exists: {{code: 1}},
		save:   {{code: 1, stderr: "Error response from daemon: reference does not exist\n"}},
		load:   {{code: 125, stderr: "Error: payload does not match any of the supported image formats\n"}},
	})
	err := h.Install(context.Background(), testImg, "/w")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{"docker save " + ref + ": exit status 1: Error response from daemon: reference does not exist", "podman load: exit status 125: Error: payload"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if _, err := os.Stat(filepath.Join(h.QuadletDir, "ov-fedora-test.container")); !os.IsNotExist(err) {
		t.Error("quadlet written although the image is missing")
	}
}

func TestInstallMissingTools(t *testing.T) {
	h, _, _ := newFakeHost(t, map[string][]reply{
		linger: lingerOn,
		exists: {{err: &engine.MissingToolError{Tool: "podman", Hint: engine.Hint("podman")}}},
	})
	if err := h.Install(context.Background(), testImg, "/w"); err == nil || !strings.Contains(err.Error(), "podman is not installed") {
		t.Errorf("got %v", err)
	}
	h, _, _ = newFakeHost(t, map[string][]reply{
		linger: lingerOn,
		exists: {{code: 1}},
		save:   {{err: &engine.MissingToolError{Tool: "docker", Hint: engine.Hint("docker")}}},
		load:   {{code: 125}},
	})
	if err := h.Install(context.Background(), testImg, "/w"); err == nil || !strings.Contains(err.Error(), "docker, to copy it from, is not installed") {
		t.Errorf("got %v", err)
	}
}

func TestUpdate(t *testing.T) {
	h, f, _ := newFakeHost(t, nil)
	err := h.Update(context.Background(), testImg)
	if err == nil || !strings.Contains(err.Error(), "run `ov pod install fedora-test` first") {
		t.Fatalf("not installed: got %v", err)
	}
	wantCalls(t, f)

	// Installed with an odd workspace; the rebuilt image has a new ref and
	// one port less. The workspace is kept, the rest follows the image.
	ws := "/home/u/my 100% project"
	text, _ := Quadlet(testImg, ws)
	if _, err := writeQuadlet(h.QuadletDir, "fedora-test", text); err != nil {
		t.Fatal(err)
	}
	img := testImg
	img.Ref = "ghcr.io/atrawog/fedora-test:2026.48.1200"
	img.Ports = []string{"8000:8000"}
	for _, tc := range []struct {
		active bool
		want   []string
	}{
		{true, []string{showEnv, "docker save " + img.Ref, load, "podman image exists " + img.Ref, reload, isActive, restart}},
		{false, []string{showEnv, "docker save " + img.Ref, load, "podman image exists " + img.Ref, reload, isActive}},
	} {
		code := 0
		if !tc.active {
			code = 3
		}
		h.Runner = &fakeRunner{replies: map[string][]reply{isActive: {{code: code}}}}
		if err := h.Update(context.Background(), img); err != nil {
			t.Fatal(err)
		}
		f := h.Runner.(*fakeRunner)
		if f.calls[1] == load {
			f.calls[1], f.calls[2] = f.calls[2], f.calls[1]
		}
		wantCalls(t, f, tc.want...)
	}
	want, _ := Quadlet(img, ws)
	if got, _ := os.ReadFile(filepath.Join(h.QuadletDir, "ov-fedora-test.container")); !bytes.Equal(got, want) {
		t.Errorf("updated quadlet:\n%s", got)
	}
}

func TestUninstall(t *testing.T) {
	h, f, stderr := newFakeHost(t, map[string][]reply{stopUnit: {{code: 5, stderr: "Failed to stop ov-fedora-test.service: Unit ov-fedora-test.service not loaded.\n"}}})
	text, _ := Quadlet(testImg, "/w")
	path, _ := writeQuadlet(h.QuadletDir, "fedora-test", text)
	if err := h.Uninstall(context.Background(), "fedora-test"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, stopUnit, reload)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("quadlet still there: %v", err)
	}
	// Again: nothing to remove is not an error, but it is said.
	stderr.Reset()
	if err := h.Uninstall(context.Background(), "fedora-test"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "was not installed") {
		t.Errorf("stderr: %s", stderr)
	}
	// A failing stop is an error, and the file stays.
	h, _, _ = newFakeHost(t, map[string][]reply{stopUnit: {{code: 1, stderr: "Job failed\n"}}})
	path, _ = writeQuadlet(h.QuadletDir, "fedora-test", text)
	if err := h.Uninstall(context.Background(), "fedora-test"); err == nil || !strings.Contains(err.Error(), "Job failed") {
		t.Errorf("got %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("quadlet removed after a failed stop: %v", err)
	}
}

func TestServiceVerbs(t *testing.T) {
	h, f, _ := newFakeHost(t, map[string][]reply{
		"systemctl --user start ov-gone.service": {{code: 5, stderr: "Failed to start ov-gone.service: Unit ov-gone.service not found.\n"}},
		"systemctl --user stop ov-x.service":     {{code: 1, stderr: noBusError}},
		"systemctl --user status ov-x.service":   {{code: 3, stdout: "inactive"}},
		"journalctl --user -u ov-x.service -f":   {{code: 130}},
	})
	ctx := context.Background()
	if err := h.ServiceStart(ctx, "x"); err != nil {
		t.Error(err)
	}
	if err := h.ServiceStart(ctx, "gone"); err == nil || !strings.Contains(err.Error(), "run `ov pod install gone` first") {
		t.Errorf("start of a missing unit: %v", err)
	}
	if err := h.ServiceStop(ctx, "x"); err == nil || !strings.Contains(err.Error(), "no systemd user session") {
		t.Errorf("stop without a session: %v", err)
	}
	var out bytes.Buffer
	h.Stdout = &out
	if code, err := h.Status(ctx, "x"); code != 3 || err != nil || out.String() != "inactive" {
		t.Errorf("status: %d %v %q", code, err, out.String())
	}
	if code, err := h.Logs(ctx, "x", true); code != 130 || err != nil {
		t.Errorf("logs: %d %v", code, err)
	}
	if code, err := h.Logs(ctx, "x", false); code != 0 || err != nil {
		t.Errorf("logs: %d %v", code, err)
	}
	wantCalls(t, f, "systemctl --user start ov-x.service", "systemctl --user start ov-gone.service", "systemctl --user stop ov-x.service",
		"systemctl --user status ov-x.service", "journalctl --user -u ov-x.service -f", "journalctl --user -u ov-x.service")
	if _, err := h.Status(ctx, "x\n"); err == nil {
		t.Error("status accepted a bad name")
	}
}

func TestShellStartStop(t *testing.T) {
	shell := "docker run --rm -v /w:/workspace -w /workspace --user 1000:1000 -p 127.0.0.1:8000:8000 -p 127.0.0.1:8080:8080 --entrypoint bash " + ref + " -c exit 7"
	h, f, _ := newFakeHost(t, map[string][]reply{
		shell:                        {{code: 7}},
		"docker stop ov-fedora-test": {{code: 1, stderr: "Error response from daemon: No such container: ov-fedora-test\n"}},
	})
	h.Stdin = nil
	code, err := h.Shell(context.Background(), testImg, "/w", "exit 7")
	if code != 7 || err != nil {
		t.Errorf("shell: %d %v", code, err)
	}
	if err := h.Start(context.Background(), testImg, "/w"); err != nil {
		t.Error(err)
	}
	err = h.Stop(context.Background(), "fedora-test")
	if err == nil || err.Error() != "docker stop ov-fedora-test: exit status 1: Error response from daemon: No such container: ov-fedora-test" {
		t.Errorf("stop: %v", err)
	}
	wantCalls(t, f, shell, "docker run -d --rm --name ov-fedora-test -v /w:/workspace -w /workspace -p 127.0.0.1:8000:8000 -p 127.0.0.1:8080:8080 "+ref+" supervisord -n -c /etc/supervisord.conf", "docker stop ov-fedora-test")
}
