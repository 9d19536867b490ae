package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"

	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/pod"
	"github.com/overthink/ov/spec"
)

// EngineFlag picks the container engine for commands that run images.
type EngineFlag struct {
	Engine string `env:"OV_ENGINE" enum:",docker,podman" default:"" placeholder:"docker|podman" help:"Container engine (default: docker if installed, else podman)."`
}

func (f EngineFlag) engine() (string, error) {
	if f.Engine != "" {
		return f.Engine, engine.Check(f.Engine)
	}
	e, err := engine.Detect(exec.LookPath)
	if err != nil {
		return "", userErrorf("%v", err)
	}
	return e, nil
}

// GPUFlag is --gpu for commands that run images.
type GPUFlag struct {
	GPU string `name:"gpu" env:"OV_GPU" enum:",auto,on,off" default:"auto" placeholder:"auto|on|off" help:"Pass the NVIDIA GPUs through (docker --gpus all; podman and quadlets: CDI device nvidia.com/gpu=all). auto: when nvidia-smi runs or a CDI spec in /etc/cdi or /var/run/cdi defines nvidia.com/gpu."`
}

// hostGPU probes this machine for GPUs (tests fake it).
var hostGPU = pod.HostGPU

// podImage resolves an images.yml image into what pod needs to run it: the
// reference (tag, or latest for "auto"), the user, the ports, the volumes
// of its layers and whether to pass GPUs through.
func podImage(ctx context.Context, g *Globals, name, tag string, gpu GPUFlag) (pod.Image, error) {
	if err := checkUserDirs(); err != nil {
		return pod.Image{}, err
	}
	if tag != "" {
		if err := spec.CheckTag(tag); err != nil {
			return pod.Image{}, userErrorf("--tag: %v", err)
		}
	}
	p, err := loadProject(g)
	if err != nil {
		return pod.Image{}, err
	}
	img, err := findImage(p, name)
	if err != nil {
		return pod.Image{}, err
	}
	users, err := userLookup(false)
	if err != nil {
		return pod.Image{}, err
	}
	volumes, err := imageVolumes(ctx, p, img, users)
	if err != nil {
		return pod.Image{}, err
	}
	withGPU, err := pod.WantGPU(ctx, gpu.GPU, hostGPU())
	if err != nil {
		return pod.Image{}, userErrorf("%v", err)
	}
	return pod.Image{Name: img.Name, Ref: runRef(img, tag), UID: img.UID, GID: img.GID, Ports: img.Ports,
		Volumes: volumes, GPU: withGPU}, nil
}

// imageVolumes returns the volumes of img's layers with ~ and $HOME
// expanded to the image's home, which is resolved as ov build resolves it
// (the base image's account at the uid), and only when a path needs it.
func imageVolumes(ctx context.Context, p *spec.Project, img *spec.Image, users plan.UserLookup) ([]pod.Volume, error) {
	var out []pod.Volume
	home := ""
	for _, v := range p.Volumes(img) {
		if home == "" && spec.ExpandHome(v.Path, "\x00") != v.Path {
			u, err := plan.ImageUser(ctx, p, img, users)
			if err != nil {
				return nil, planError(fmt.Errorf("image %q: the home its volumes are under: %w", img.Name, err))
			}
			home = u.Home
		}
		out = append(out, pod.Volume{Name: v.Name, Path: path.Clean(spec.ExpandHome(v.Path, home))})
	}
	return out, nil
}

// podTarget is podImage plus the workspace directory, made absolute.
func podTarget(ctx context.Context, g *Globals, name, tag, workspace string, gpu GPUFlag) (pod.Image, string, error) {
	img, err := podImage(ctx, g, name, tag, gpu)
	if err != nil {
		return pod.Image{}, "", err
	}
	ws, err := pod.Workspace(workspace)
	if err != nil {
		return pod.Image{}, "", userErrorf("%v", err)
	}
	return img, ws, nil
}

// runRef is the reference a host runs: the given tag, else latest for tag
// "auto" (the CalVer tag changes every build), else the configured tag.
func runRef(img *spec.Image, tag string) string {
	switch {
	case tag != "":
	case img.Tag == "auto":
		tag = "latest"
	default:
		tag = img.Tag
	}
	return img.Ref() + ":" + tag
}

// ShellCmd is `ov shell`.
type ShellCmd struct {
	EngineFlag
	GPUFlag
	Image     string `arg:"" predictor:"image" help:"Image name from images.yml."`
	Workspace string `short:"w" placeholder:"PATH" help:"Directory mounted at /workspace (default: the current directory)."`
	Tag       string `placeholder:"TAG" help:"Tag to run (default: latest for tag auto, else the configured tag)."`
	Command   string `short:"c" placeholder:"CMD" help:"Run CMD with bash -c instead of an interactive shell; its exit code becomes ov's."`
}

func (c *ShellCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	img, ws, err := podTarget(ctx, g, c.Image, c.Tag, c.Workspace, c.GPUFlag)
	if err != nil {
		return err
	}
	engine, err := c.engine()
	if err != nil {
		return err
	}
	h := pod.NewHost(engine)
	h.Stdout, h.Stderr = g.Stdout, g.Stderr
	return codeErr(h.Shell(ctx, img, ws, c.Command))
}

// StartCmd is `ov start`.
type StartCmd struct {
	EngineFlag
	GPUFlag
	Image     string `arg:"" predictor:"image" help:"Image name from images.yml."`
	Workspace string `short:"w" placeholder:"PATH" help:"Directory mounted at /workspace (default: the current directory)."`
	Tag       string `placeholder:"TAG" help:"Tag to run (default: latest for tag auto, else the configured tag)."`
}

func (c *StartCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	img, ws, err := podTarget(ctx, g, c.Image, c.Tag, c.Workspace, c.GPUFlag)
	if err != nil {
		return err
	}
	engine, err := c.engine()
	if err != nil {
		return err
	}
	if err := pod.NewHost(engine).Start(ctx, img, ws); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "started %s (supervisord) from %s\n", pod.ContainerName(img.Name), img.Ref)
	return nil
}

// StopCmd is `ov stop`.
type StopCmd struct {
	EngineFlag
	Image string `arg:"" predictor:"image" help:"Image name from images.yml."`
}

func (c *StopCmd) Run(g *Globals) error {
	engine, err := c.engine()
	if err != nil {
		return err
	}
	if err := checkImageArg(c.Image); err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	if err := pod.NewHost(engine).Stop(ctx, c.Image); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "stopped %s\n", pod.ContainerName(c.Image))
	return nil
}

// exitStatus passes a child's exit status through as ov's, silently.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// codeErr turns a (child exit code, error) pair into ov's result.
func codeErr(code int, err error) error {
	if err == nil && code != 0 {
		return exitStatus(code)
	}
	return err
}

// checkImageArg refuses an image argument that cannot name an image, for
// the commands that do not read the project (ov stop, ov pod start, ...),
// and a relative HOME or XDG_CONFIG_HOME (checkUserDirs).
func checkImageArg(name string) error {
	if err := checkUserDirs(); err != nil {
		return err
	}
	if err := pod.ValidateName(name); err != nil || len(name) > spec.MaxNameLen {
		return userErrorf("image name %q: want letters, digits, '_', '.' and '-', at most %d", clipArg(name), spec.MaxNameLen)
	}
	return nil
}

// clipArg shortens an argument quoted in a message.
func clipArg(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// checkUserDirs refuses a relative HOME or XDG_CONFIG_HOME: quadlets and
// caches would land relative to the working directory.
func checkUserDirs() error {
	for _, v := range []string{"HOME", "XDG_CONFIG_HOME"} {
		if d := os.Getenv(v); d != "" && !filepath.IsAbs(d) {
			return userErrorf("$%s is the relative path %q: set it to an absolute path", v, clipArg(d))
		}
	}
	return nil
}
