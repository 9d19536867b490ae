package main

import (
	"fmt"
	"os/exec"

	"github.com/overthink/ov/pod"
	"github.com/overthink/ov/spec"
)

// EngineFlag picks the container engine for commands that run images.
type EngineFlag struct {
	Engine string `env:"OV_ENGINE" enum:",docker,podman" default:"" placeholder:"docker|podman" help:"Container engine (default: docker if installed, else podman)."`
}

func (f EngineFlag) engine() (string, error) {
	if f.Engine != "" {
		return f.Engine, pod.CheckEngine(f.Engine)
	}
	e, err := pod.DetectEngine(exec.LookPath)
	if err != nil {
		return "", userErrorf("%v", err)
	}
	return e, nil
}

// podImage resolves an images.yml image into what pod needs to run it: the
// reference (tag, or latest for "auto"), the user and the ports.
func podImage(g *Globals, name, tag string) (pod.Image, error) {
	p, err := loadProject(g)
	if err != nil {
		return pod.Image{}, err
	}
	img, err := findImage(p, name)
	if err != nil {
		return pod.Image{}, err
	}
	return pod.Image{Name: img.Name, Ref: runRef(img, tag), UID: img.UID, GID: img.GID, Ports: img.Ports}, nil
}

// podTarget is podImage plus the workspace directory, made absolute.
func podTarget(g *Globals, name, tag, workspace string) (pod.Image, string, error) {
	img, err := podImage(g, name, tag)
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
	Image     string `arg:"" predictor:"image" help:"Image name from images.yml."`
	Workspace string `short:"w" placeholder:"PATH" help:"Directory mounted at /workspace (default: the current directory)."`
	Tag       string `placeholder:"TAG" help:"Tag to run (default: latest for tag auto, else the configured tag)."`
	Command   string `short:"c" placeholder:"CMD" help:"Run CMD with bash -c instead of an interactive shell; its exit code becomes ov's."`
}

func (c *ShellCmd) Run(g *Globals) error {
	img, ws, err := podTarget(g, c.Image, c.Tag, c.Workspace)
	if err != nil {
		return err
	}
	engine, err := c.engine()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	h := pod.NewHost(engine)
	h.Stdout, h.Stderr = g.Stdout, g.Stderr
	return codeErr(h.Shell(ctx, img, ws, c.Command))
}

// StartCmd is `ov start`.
type StartCmd struct {
	EngineFlag
	Image     string `arg:"" predictor:"image" help:"Image name from images.yml."`
	Workspace string `short:"w" placeholder:"PATH" help:"Directory mounted at /workspace (default: the current directory)."`
	Tag       string `placeholder:"TAG" help:"Tag to run (default: latest for tag auto, else the configured tag)."`
}

func (c *StartCmd) Run(g *Globals) error {
	img, ws, err := podTarget(g, c.Image, c.Tag, c.Workspace)
	if err != nil {
		return err
	}
	engine, err := c.engine()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
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
