package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/overthink/ov/pod"
	"github.com/overthink/ov/spec"
)

func TestRunRef(t *testing.T) {
	for _, tc := range []struct {
		img  spec.Image
		tag  string
		want string
	}{
		{spec.Image{Name: "app", Registry: "ghcr.io/o", Tag: "auto"}, "", "ghcr.io/o/app:latest"},
		{spec.Image{Name: "app", Registry: "ghcr.io/o", Tag: "auto"}, "2026.47.905", "ghcr.io/o/app:2026.47.905"},
		{spec.Image{Name: "app", Tag: "nightly"}, "", "app:nightly"},
		{spec.Image{Name: "app", Tag: "1.2.3"}, "", "app:1.2.3"},
	} {
		if got := runRef(&tc.img, tc.tag); got != tc.want {
			t.Errorf("runRef(%+v, %q) = %q, want %q", tc.img, tc.tag, got, tc.want)
		}
	}
}

// --max-mb > images.yml merge.max_mb > 128.
func TestMergeMaxMB(t *testing.T) {
	withMerge := &spec.Image{Merge: &spec.Merge{Auto: true, MaxMB: 64}}
	for _, tc := range []struct {
		img  *spec.Image
		flag int
		want int
	}{
		{withMerge, 0, 64},
		{withMerge, 512, 512},
		{&spec.Image{}, 0, 128},
		{&spec.Image{}, 32, 32},
		{&spec.Image{Merge: &spec.Merge{Auto: true}}, 0, 128},
	} {
		if got := mergeMaxMB(tc.img, tc.flag); got != tc.want {
			t.Errorf("mergeMaxMB(%+v, %d) = %d, want %d", tc.img.Merge, tc.flag, got, tc.want)
		}
	}
}

// The host tools TestRunCUDAFakedHost fakes with this test binary (see
// TestMain): each call is appended to the file named by $OV_FAKE_TOOL_LOG;
// nvidia-smi succeeds only with OV_FAKE_GPU=1, loginctl reports lingering,
// everything else succeeds silently.
const fakeToolLog = "OV_FAKE_TOOL_LOG"

var fakeTools = []string{"docker", "podman", "nvidia-smi", "systemctl", "loginctl"}

func fakeTool(log string) int {
	name := filepath.Base(os.Args[0])
	line := []string{name}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsAny(a, " \t\n\"") {
			a = strconv.Quote(a)
		}
		line = append(line, a)
	}
	f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return 99
	}
	defer f.Close()
	fmt.Fprintln(f, strings.Join(line, " "))
	switch {
	case name == "nvidia-smi" && os.Getenv("OV_FAKE_GPU") != "1":
		return 9 // as without a driver
	case name == "loginctl":
		fmt.Println("Linger=yes")
	}
	return 0
}

// TestRunCUDAFakedHostNoGPUHere runs ov shell, ov start and ov pod install
// on the CUDA corpus against faked docker, podman, nvidia-smi, systemctl and
// loginctl (this machine has no GPU, and PID 1 is not systemd): the argv
// each engine gets and the quadlet written are the golden. It proves the
// volumes of each image's chain (~ and $HOME expanded to its home) and
// --gpu auto (nvidia-smi, a CDI spec), on and off.
func TestRunCUDAFakedHostNoGPUHere(t *testing.T) {
	bin, cdiDir, cfg := t.TempDir(), t.TempDir(), t.TempDir()
	for _, tool := range fakeTools {
		if err := os.Symlink(os.Args[0], filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(t.TempDir(), "calls")
	t.Setenv(fakeToolLog, log)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("OV_OFFLINE", "1")
	t.Setenv("OV_ENGINE", "")
	t.Setenv("OV_GPU", "")
	t.Setenv("XDG_CONFIG_HOME", cfg)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	probe := hostGPU
	hostGPU = func() pod.GPUProbe { p := probe(); p.CDIDirs = []string{cdiDir}; return p }
	defer func() { hostGPU = probe }()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	stdin := os.Stdin
	os.Stdin = devNull // no -i: as in CI
	defer func() { os.Stdin = stdin }()
	ws := t.TempDir()

	var got strings.Builder
	for _, tc := range []struct {
		gpu  string // OV_FAKE_GPU: whether nvidia-smi succeeds
		cdi  bool   // whether a CDI spec defines nvidia.com/gpu=all
		args []string
	}{
		{"1", false, []string{"shell", "ollama", "--engine", "docker", "-c", "nvidia-smi"}},
		{"0", false, []string{"shell", "ollama", "--engine", "podman", "-c", "nvidia-smi"}},
		{"0", true, []string{"shell", "comfyui", "--engine", "podman", "-c", "nvidia-smi"}},
		{"1", true, []string{"shell", "comfyui", "--engine", "docker", "--gpu", "off", "-c", "true"}},
		{"0", false, []string{"start", "jupyter", "--engine", "docker", "--gpu", "on"}},
		{"1", false, []string{"start", "nvidia", "--engine", "podman"}},
		{"1", false, []string{"pod", "install", "comfyui"}},
	} {
		t.Setenv("OV_FAKE_GPU", tc.gpu)
		spec := filepath.Join(cdiDir, "nvidia.yaml")
		os.Remove(spec)
		if tc.cdi {
			if err := os.WriteFile(spec, []byte("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n  - name: all\n    containerEdits:\n      deviceNodes:\n        - path: /dev/nvidia0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		os.Remove(log)
		args := append([]string{"-C", "testdata/cuda"}, tc.args...)
		args = append(args, "-w", ws)
		_, stderr, code := ov(t, args...)
		if code != 0 {
			t.Fatalf("ov %s: exit %d: %s", strings.Join(tc.args, " "), code, stderr)
		}
		calls, _ := os.ReadFile(log)
		fmt.Fprintf(&got, "$ nvidia-smi ok=%s cdi=%v ov %s\n%s\n", tc.gpu, tc.cdi, strings.Join(tc.args, " "), calls)
	}
	quadlet, err := os.ReadFile(filepath.Join(cfg, "containers", "systemd", "ov-comfyui.container"))
	if err != nil {
		t.Fatal(err)
	}
	got.Write(quadlet)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	out := strings.ReplaceAll(got.String(), ws, "$WS")
	golden(t, "cuda-run-faked-host", strings.ReplaceAll(out, "show-user "+me.Username+" ", "show-user $USER "))
}

// The CUDA corpus validates, and inspect and list show each image's
// volumes: its chain's, the first declaration of a name winning, ~ and
// $HOME expanded (offline: home /home/<user>).
func TestCUDACorpus(t *testing.T) {
	t.Setenv("OV_OFFLINE", "1")
	if _, stderr, code := ov(t, "-C", "testdata/cuda", "validate"); code != 0 || stderr != "ok: 4 images, 5 layers\n" {
		t.Fatalf("validate: exit %d: %s", code, stderr)
	}
	for name, args := range map[string][]string{
		"cuda-inspect-comfyui":        {"inspect", "comfyui"},
		"cuda-inspect-ollama-volumes": {"inspect", "ollama", "--format", "volumes"},
		"cuda-inspect-ollama-tag":     {"inspect", "ollama", "--format", "tag"},
		"cuda-list-volumes":           {"list", "volumes"},
	} {
		stdout, stderr, code := ov(t, append([]string{"-C", "testdata/cuda"}, args...)...)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", name, code, stderr)
		}
		golden(t, name, stdout)
	}
}

// Volume paths under ~ or $HOME take the home a build gives the image
// (here the base's account at uid 1000, like ubuntu's), looked up once and
// only when a path needs it; a failed lookup is the user's error.
func TestImageVolumesHome(t *testing.T) {
	p, err := spec.Load("testdata/cuda")
	if err != nil {
		t.Fatal(err)
	}
	var lookups []string
	users := func(_ context.Context, ref string, want spec.User) (spec.User, error) {
		lookups = append(lookups, ref)
		if ref == "unreachable" {
			return spec.User{}, errors.New("registry down")
		}
		return spec.User{Name: "ubuntu", UID: want.UID, GID: want.GID, Home: "/home/ubuntu"}, nil
	}
	got, err := imageVolumes(context.Background(), p, p.Image("comfyui"), users)
	want := []pod.Volume{{Name: "cache", Path: "/home/ubuntu/.cache"}, {Name: "models", Path: "/opt/comfyui/models"}, {Name: "output", Path: "/home/ubuntu/ComfyUI/output"}}
	if err != nil || !reflect.DeepEqual(got, want) || !slices.Equal(lookups, []string{"nvidia/cuda:12.4.1-runtime-ubuntu22.04"}) {
		t.Errorf("comfyui: %+v, %v (lookups %q)", got, err, lookups)
	}
	p.Image("nvidia").Base = "unreachable"
	var uerr *userError
	if _, err := imageVolumes(context.Background(), p, p.Image("ollama"), users); !errors.As(err, &uerr) || !strings.Contains(err.Error(), "registry down") {
		t.Errorf("failed lookup: %v", err)
	}
	lookups = nil
	plain, err := spec.Load("testdata/project")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := imageVolumes(context.Background(), plain, plain.Image("web"), users); err != nil || got != nil || lookups != nil {
		t.Errorf("no volumes: %+v, %v, lookups %q", got, err, lookups)
	}
}
