package pod

import (
	"context"
	"fmt"
	"time"

	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/overthink/ov/engine"
)

// CDIDevice is the CDI name of every NVIDIA GPU (nvidia-ctk cdi generate).
const CDIDevice = "nvidia.com/gpu=all"

// GPU modes of --gpu.
const (
	GPUAuto = "auto" // pass GPUs through when the host has an NVIDIA GPU
	GPUOn   = "on"
	GPUOff  = "off"
)

// GPUProbe looks for an NVIDIA GPU on the host: a CDI spec defines
// nvidia.com/gpu=all, or nvidia-smi runs successfully.
type GPUProbe struct {
	Runner  engine.Runner // runs nvidia-smi
	CDIDirs []string      // directories holding CDI specs: /etc/cdi, /var/run/cdi
}

// HostGPU probes this machine.
func HostGPU() GPUProbe { return GPUProbe{Runner: engine.ExecRunner{}, CDIDirs: cdi.DefaultSpecDirs} }

// WantGPU decides --gpu: on and off as said, auto as the probe finds.
func WantGPU(ctx context.Context, mode string, probe GPUProbe) (bool, error) {
	switch mode {
	case GPUOn:
		return true, nil
	case GPUOff:
		return false, nil
	case GPUAuto, "":
		return probe.Present(ctx), nil
	}
	return false, fmt.Errorf("--gpu %q: want %s, %s or %s", mode, GPUAuto, GPUOn, GPUOff)
}

// Present reports whether the host has an NVIDIA GPU the engines can pass
// through.
func (p GPUProbe) Present(ctx context.Context) bool {
	return p.cdiSpec() || p.nvidiaSMI(ctx)
}

// nvidiaSMI runs nvidia-smi (bounded: a wedged driver can hang it); not
// installed, failing or slow means no GPU.
func (p GPUProbe) nvidiaSMI(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	code, err := p.Runner.Run(ctx, []string{"nvidia-smi", "-L"}, engine.Stdio{})
	return err == nil && code == 0 && ctx.Err() == nil
}

// cdiSpec reports whether the CDI specs in the probe's directories define
// CDIDevice, which podman and the quadlet ask for. Invalid specs are
// skipped, as the engines skip them.
func (p GPUProbe) cdiSpec() bool {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(p.CDIDirs...), cdi.WithAutoRefresh(false))
	return err == nil && cache.GetDevice(CDIDevice) != nil
}
