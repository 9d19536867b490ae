package pod

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/overthink/ov/engine"
)

// No GPU on this machine: detection is proven against a faked nvidia-smi
// and CDI spec directories written by the test; what the engines get is
// proven by argv and quadlet text.

// cudaImg is an image of a CUDA library (ollama-like): a model volume
// under the user's home, GPUs passed through.
var cudaImg = Image{
	Name:    "ollama",
	Ref:     "ghcr.io/o/ollama:latest",
	UID:     1000,
	GID:     1000,
	Ports:   []string{"11434"},
	Volumes: []Volume{{Name: "models", Path: "/home/user/.ollama/models"}, {Name: "cache", Path: "/var/cache/ollama"}},
	GPU:     true,
}

func TestGPUAndVolumesArgvNoGPUHere(t *testing.T) {
	tests := []struct {
		name string
		got  func() ([]string, error)
		want string
	}{
		{"docker shell", func() ([]string, error) {
			return ShellArgv(engine.Docker, cudaImg, ShellOptions{Workspace: "/w", Command: "nvidia-smi"})
		}, "docker run --rm -v /w:/workspace -w /workspace -v ov-ollama-models:/home/user/.ollama/models -v ov-ollama-cache:/var/cache/ollama --gpus all --user 1000:1000 -p 127.0.0.1:11434:11434 --entrypoint bash ghcr.io/o/ollama:latest -c nvidia-smi"},
		{"podman shell", func() ([]string, error) {
			return ShellArgv(engine.Podman, cudaImg, ShellOptions{Workspace: "/w", Command: "nvidia-smi"})
		}, "podman run --rm -v /w:/workspace -w /workspace -v ov-ollama-models:/home/user/.ollama/models -v ov-ollama-cache:/var/cache/ollama --device nvidia.com/gpu=all --user 1000:1000 -p 127.0.0.1:11434:11434 --entrypoint bash ghcr.io/o/ollama:latest -c nvidia-smi"},
		{"docker start", func() ([]string, error) { return StartArgv(engine.Docker, cudaImg, "/w") },
			"docker run -d --rm --name ov-ollama -v /w:/workspace -w /workspace -v ov-ollama-models:/home/user/.ollama/models -v ov-ollama-cache:/var/cache/ollama --gpus all -p 127.0.0.1:11434:11434 ghcr.io/o/ollama:latest supervisord -n -c /etc/supervisord.conf"},
		{"podman start", func() ([]string, error) { return StartArgv(engine.Podman, cudaImg, "/w") },
			"podman run -d --rm --name ov-ollama -v /w:/workspace -w /workspace -v ov-ollama-models:/home/user/.ollama/models -v ov-ollama-cache:/var/cache/ollama --device nvidia.com/gpu=all -p 127.0.0.1:11434:11434 ghcr.io/o/ollama:latest supervisord -n -c /etc/supervisord.conf"},
		{"podman start without GPU", func() ([]string, error) {
			img := cudaImg
			img.GPU, img.Volumes = false, nil
			return StartArgv(engine.Podman, img, "/w")
		}, "podman run -d --rm --name ov-ollama -v /w:/workspace -w /workspace -p 127.0.0.1:11434:11434 ghcr.io/o/ollama:latest supervisord -n -c /etc/supervisord.conf"},
	}
	for _, tt := range tests {
		got, err := tt.got()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !reflect.DeepEqual(got, split(tt.want)) {
			t.Errorf("%s:\ngot  %q\nwant %q", tt.name, got, split(tt.want))
		}
	}
}

// cdiSpec is what `nvidia-ctk cdi generate` writes, cut down.
const cdiSpec = `cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
  - name: all
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
containerEdits:
  deviceNodes:
    - path: /dev/nvidiactl
`

func TestWantGPUFakedDetection(t *testing.T) {
	ctx := context.Background()
	withCDI := func(files map[string]string) []string {
		dir := t.TempDir()
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return []string{filepath.Join(t.TempDir(), "missing"), dir}
	}
	smi := func(r reply) *fakeRunner { return &fakeRunner{replies: map[string][]reply{"nvidia-smi -L": {r}}} }
	noSMI := reply{err: &engine.MissingToolError{Tool: "nvidia-smi"}}
	tests := []struct {
		name  string
		mode  string
		probe GPUProbe
		want  bool
	}{
		{"on needs no probe", GPUOn, GPUProbe{Runner: smi(noSMI)}, true},
		{"off ignores a GPU", GPUOff, GPUProbe{Runner: smi(reply{}), CDIDirs: withCDI(map[string]string{"nvidia.yaml": cdiSpec})}, false},
		{"auto: nvidia-smi runs", GPUAuto, GPUProbe{Runner: smi(reply{})}, true},
		{"auto: nvidia-smi fails (no driver)", GPUAuto, GPUProbe{Runner: smi(reply{code: 9})}, false},
		{"auto: no nvidia-smi, no CDI", GPUAuto, GPUProbe{Runner: smi(noSMI), CDIDirs: withCDI(nil)}, false},
		{"auto: CDI spec", GPUAuto, GPUProbe{Runner: smi(noSMI), CDIDirs: withCDI(map[string]string{"nvidia.yaml": cdiSpec})}, true},
		{"auto: CDI spec as JSON", GPUAuto, GPUProbe{Runner: smi(noSMI), CDIDirs: withCDI(map[string]string{"nvidia.json": `{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu","devices":[{"name":"all","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia0"}]}}]}`})}, true},
		{"auto: CDI spec of another vendor", GPUAuto, GPUProbe{Runner: smi(noSMI), CDIDirs: withCDI(map[string]string{"amd.yaml": strings.ReplaceAll(cdiSpec, "nvidia.com/gpu", "amd.com/gpu")})}, false},
		{"auto: CDI spec without the all device", GPUAuto, GPUProbe{Runner: smi(noSMI), CDIDirs: withCDI(map[string]string{"nvidia.yaml": strings.Replace(cdiSpec, "name: all", "name: \"1\"", 1)})}, false},
		{"auto: malformed CDI spec", GPUAuto, GPUProbe{Runner: smi(noSMI), CDIDirs: withCDI(map[string]string{"nvidia.yaml": "kind: [nvidia.com/gpu\n"})}, false},
		{"default is auto", "", GPUProbe{Runner: smi(reply{})}, true},
	}
	for _, tt := range tests {
		got, err := WantGPU(ctx, tt.mode, tt.probe)
		if err != nil || got != tt.want {
			t.Errorf("%s: WantGPU = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	// nvidia-smi is what auto runs; on and off run nothing.
	f := smi(reply{})
	WantGPU(ctx, GPUAuto, GPUProbe{Runner: f})
	WantGPU(ctx, GPUOn, GPUProbe{Runner: f})
	wantCalls(t, f, "nvidia-smi -L")
	if _, err := WantGPU(ctx, "yes", GPUProbe{Runner: f}); err == nil || !strings.Contains(err.Error(), "auto, on or off") {
		t.Errorf("bad mode: %v", err)
	}
	if dirs := HostGPU().CDIDirs; !reflect.DeepEqual(dirs, []string{"/etc/cdi", "/var/run/cdi"}) {
		t.Errorf("host CDI directories %q", dirs)
	}
}
