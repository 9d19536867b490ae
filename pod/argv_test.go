package pod

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/overthink/ov/engine"
)

var testImg = Image{
	Name:  "fedora-test",
	Ref:   "ghcr.io/atrawog/fedora-test:latest",
	UID:   1000,
	GID:   1000,
	Ports: []string{"8000:8000", "8080"},
}

func split(s string) []string { return strings.Split(s, " ") }

func TestShellArgv(t *testing.T) {
	rootImg := Image{Name: "root", Ref: "localhost/root:1", UID: 0, GID: 0}
	tests := []struct {
		name string
		eng  string
		img  Image
		opts ShellOptions
		want []string
	}{
		{"interactive terminal", engine.Docker, testImg, ShellOptions{Workspace: "/home/u/p", Stdin: StdinTerminal},
			split("docker run --rm -it -v /home/u/p:/workspace -w /workspace --user 1000:1000 -p 127.0.0.1:8000:8000 -p 127.0.0.1:8080:8080 --entrypoint bash ghcr.io/atrawog/fedora-test:latest")},
		{"interactive piped", engine.Docker, testImg, ShellOptions{Workspace: "/w", Stdin: StdinData},
			split("docker run --rm -i -v /w:/workspace -w /workspace --user 1000:1000 -p 127.0.0.1:8000:8000 -p 127.0.0.1:8080:8080 --entrypoint bash ghcr.io/atrawog/fedora-test:latest")},
		{"interactive no stdin", engine.Docker, rootImg, ShellOptions{Workspace: "/w", Stdin: StdinNone},
			split("docker run --rm -i -v /w:/workspace -w /workspace --user 0:0 --entrypoint bash localhost/root:1")},
		{"command in CI", engine.Docker, rootImg, ShellOptions{Workspace: "/w", Command: "make test", Stdin: StdinNone},
			append(split("docker run --rm -v /w:/workspace -w /workspace --user 0:0 --entrypoint bash localhost/root:1 -c"), "make test")},
		{"command with piped input", engine.Docker, rootImg, ShellOptions{Workspace: "/w", Command: "cat", Stdin: StdinData},
			split("docker run --rm -i -v /w:/workspace -w /workspace --user 0:0 --entrypoint bash localhost/root:1 -c cat")},
		{"command from a terminal has no tty", engine.Docker, rootImg, ShellOptions{Workspace: "/w", Command: "ls", Stdin: StdinTerminal},
			split("docker run --rm -i -v /w:/workspace -w /workspace --user 0:0 --entrypoint bash localhost/root:1 -c ls")},
		{"podman, spaces in workspace", engine.Podman, rootImg, ShellOptions{Workspace: "/home/u/my project", Stdin: StdinTerminal},
			[]string{"podman", "run", "--rm", "-it", "-v", "/home/u/my project:/workspace", "-w", "/workspace", "--user", "0:0", "--entrypoint", "bash", "localhost/root:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ShellArgv(tt.eng, tt.img, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestStartStopArgv(t *testing.T) {
	got, err := StartArgv(engine.Docker, testImg, "/home/u/p")
	if err != nil {
		t.Fatal(err)
	}
	want := split("docker run -d --rm --name ov-fedora-test -v /home/u/p:/workspace -w /workspace -p 127.0.0.1:8000:8000 -p 127.0.0.1:8080:8080 ghcr.io/atrawog/fedora-test:latest supervisord -n -c /etc/supervisord.conf")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("start:\ngot  %q\nwant %q", got, want)
	}
	got, err = StartArgv(engine.Podman, Image{Name: "x", Ref: "x:1"}, "/w")
	if err != nil {
		t.Fatal(err)
	}
	want = split("podman run -d --rm --name ov-x -v /w:/workspace -w /workspace x:1 supervisord -n -c /etc/supervisord.conf")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("start podman:\ngot  %q\nwant %q", got, want)
	}
	got, err = StopArgv(engine.Docker, "fedora-test")
	if err != nil {
		t.Fatal(err)
	}
	if want := split("docker stop ov-fedora-test"); !reflect.DeepEqual(got, want) {
		t.Errorf("stop: got %q want %q", got, want)
	}
}

func TestHostArgv(t *testing.T) {
	tests := []struct {
		got  []string
		want string
	}{
		{docker.SaveArgv("ghcr.io/x/y:1"), "docker save ghcr.io/x/y:1"},
		{podman.LoadArgv(), "podman load"},
		{podman.ExistsArgv("ghcr.io/x/y:1"), "podman image exists ghcr.io/x/y:1"},
		{SystemctlArgv("daemon-reload", ""), "systemctl --user daemon-reload"},
		{SystemctlArgv("start", "y"), "systemctl --user start ov-y.service"},
		{SystemctlArgv("stop", "y"), "systemctl --user stop ov-y.service"},
		{SystemctlArgv("status", "y"), "systemctl --user status ov-y.service"},
		{SystemctlArgv("restart", "y"), "systemctl --user restart ov-y.service"},
		{SystemctlArgv("is-active", "y"), "systemctl --user is-active ov-y.service"},
		{JournalctlArgv("y", false), "journalctl --user -u ov-y.service"},
		{JournalctlArgv("y", true), "journalctl --user -u ov-y.service -f"},
		{LingerArgv("alice"), "loginctl show-user alice -p Linger"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, split(tt.want)) {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestPublishSpec(t *testing.T) {
	good := map[string]string{
		"8080":      "127.0.0.1:8080:8080",
		"8000:9000": "127.0.0.1:8000:9000",
		"1:65535":   "127.0.0.1:1:65535",
	}
	for in, want := range good {
		got, err := PublishSpec(in)
		if err != nil || got != want {
			t.Errorf("PublishSpec(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65536", "080", "80:", ":80", "a", "1:2:3", "80/tcp", "0.0.0.0:80:80", " 80", "80\n", "80\nExec=evil", "+80", "-1", "99999999999999999999"} {
		if got, err := PublishSpec(in); err == nil {
			t.Errorf("PublishSpec(%q) = %q, want an error", in, got)
		}
	}
}

// Every value that reaches argv or the unit file is checked again here,
// whatever the caller validated.
func TestRejectsBadInput(t *testing.T) {
	mod := func(f func(*Image)) Image {
		i := testImg
		i.Ports = append([]string(nil), testImg.Ports...)
		f(&i)
		return i
	}
	bad := []struct {
		name string
		eng  string
		img  Image
		ws   string
		msg  string
	}{
		{"engine", "nerdctl", testImg, "/w", `engine "nerdctl"`},
		{"empty engine", "", testImg, "/w", `engine ""`},
		{"name with newline", engine.Docker, mod(func(i *Image) { i.Name = "x\n[Service]" }), "/w", "image name"},
		{"name with slash", engine.Docker, mod(func(i *Image) { i.Name = "a/b" }), "/w", "image name"},
		{"name starting with dash", engine.Docker, mod(func(i *Image) { i.Name = "-rm" }), "/w", "image name"},
		{"ref with newline", engine.Docker, mod(func(i *Image) { i.Ref = "x:1\nExecStartPre=/bin/evil" }), "/w", "control character"},
		{"ref with space", engine.Docker, mod(func(i *Image) { i.Ref = "x:1 --privileged" }), "/w", "image reference"},
		{"ref as flag", engine.Docker, mod(func(i *Image) { i.Ref = "--privileged" }), "/w", "image reference"},
		{"empty ref", engine.Docker, mod(func(i *Image) { i.Ref = "" }), "/w", "image reference"},
		{"port injection", engine.Docker, mod(func(i *Image) { i.Ports = []string{"80\nExec=evil"} }), "/w", "port"},
		{"negative uid", engine.Docker, mod(func(i *Image) { i.UID = -1 }), "/w", "negative"},
		{"relative workspace", engine.Docker, testImg, "work", "not absolute"},
		{"workspace newline", engine.Docker, testImg, "/w\nExecStartPre=/bin/evil", "control character"},
		{"workspace CR", engine.Docker, testImg, "/w\r", "control character"},
		{"workspace NUL", engine.Docker, testImg, "/w\x00", "control character"},
		{"workspace colon", engine.Docker, testImg, "/a:/etc", "':'"},
		{"relative volume", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"data", "data"}} }), "/w", "must be absolute"},
		{"volume at root", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"data", "/"}} }), "/w", "must be absolute, not /"},
		{"volume path colon", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"data", "/a:/etc"}} }), "/w", "':'"},
		{"volume path comma", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"data", "/a,readonly"}} }), "/w", "','"},
		{"volume path newline", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"data", "/a\nExecStartPre=/bin/evil"}} }), "/w", "control character"},
		{"volume name flag", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"x --privileged", "/a"}} }), "/w", "volume name"},
		{"volume name colon", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"a:/etc", "/a"}} }), "/w", "volume name"},
		{"volume twice", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"a", "/a"}, {"a", "/b"}} }), "/w", "listed twice"},
		{"volume paths clash", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"a", "/a"}, {"b", "/a/"}} }), "/w", `already mounted by volume "a"`},
		{"volume on workspace", engine.Docker, mod(func(i *Image) { i.Volumes = []Volume{{"a", "/workspace"}} }), "/w", "already mounted by the workspace"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err1 := ShellArgv(tt.eng, tt.img, ShellOptions{Workspace: tt.ws})
			_, err2 := StartArgv(tt.eng, tt.img, tt.ws)
			for _, err := range []error{err1, err2} {
				if err == nil || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("got %v, want an error mentioning %q", err, tt.msg)
				}
			}
			if tt.eng != "" && tt.eng != "nerdctl" {
				if _, err := Quadlet(tt.img, tt.ws); err == nil || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("Quadlet: got %v, want an error mentioning %q", err, tt.msg)
				}
			}
		})
	}
	if _, err := StopArgv(engine.Docker, "a b"); err == nil {
		t.Error("StopArgv accepted a bad name")
	}
}

func TestWorkspace(t *testing.T) {
	dir := t.TempDir()
	spaced := filepath.Join(dir, "my project")
	if err := os.Mkdir(spaced, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(spaced)
	got, err := Workspace("")
	if err != nil || got != spaced {
		t.Errorf("Workspace(\"\") = %q, %v; want %q", got, err, spaced)
	}
	got, err = Workspace("..")
	if err != nil || got != dir {
		t.Errorf("Workspace(..) = %q, %v; want %q", got, err, dir)
	}
	if _, err := Workspace(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: got %v", err)
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	if _, err := Workspace(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file: got %v", err)
	}
}
