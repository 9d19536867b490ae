package main

import (
	"fmt"

	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/pod"
)

// PodCmd is `ov pod`: images as podman quadlet systemd user services.
type PodCmd struct {
	Install   PodInstallCmd   `cmd:"" help:"Write ~/.config/containers/systemd/ov-<image>.container (copying the image from docker when podman lacks it) and reload systemd."`
	Update    PodUpdateCmd    `cmd:"" help:"Copy the image from docker again, rewrite the quadlet, restart the service if it runs."`
	Uninstall PodUninstallCmd `cmd:"" help:"Stop the service, remove its quadlet, reload systemd."`
	Start     PodStartCmd     `cmd:"" help:"systemctl --user start ov-<image>.service"`
	Stop      PodStopCmd      `cmd:"" help:"systemctl --user stop ov-<image>.service"`
	Status    PodStatusCmd    `cmd:"" help:"systemctl --user status ov-<image>.service"`
	Logs      PodLogsCmd      `cmd:"" help:"journalctl --user -u ov-<image>.service"`
}

func podHost(g *Globals) *pod.Host {
	h := pod.NewHost(engine.Podman)
	h.Stdout, h.Stderr = g.Stdout, g.Stderr
	return h
}

// PodInstallCmd is `ov pod install`.
type PodInstallCmd struct {
	GPUFlag
	Image     string `arg:"" predictor:"image" help:"Image name from images.yml."`
	Workspace string `short:"w" placeholder:"PATH" help:"Directory mounted at /workspace (default: the current directory)."`
	Tag       string `placeholder:"TAG" help:"Tag to run (default: latest for tag auto, else the configured tag)."`
}

func (c *PodInstallCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	img, ws, err := podTarget(ctx, g, c.Image, c.Tag, c.Workspace, c.GPUFlag)
	if err != nil {
		return err
	}
	if err := podHost(g).Install(ctx, img, ws); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "installed %s; start it with: ov pod start %s\n", pod.ServiceName(img.Name), img.Name)
	return nil
}

// PodUpdateCmd is `ov pod update`.
type PodUpdateCmd struct {
	GPUFlag
	Image string `arg:"" predictor:"image" help:"Image name from images.yml."`
	Tag   string `placeholder:"TAG" help:"Tag to run (default: latest for tag auto, else the configured tag)."`
}

func (c *PodUpdateCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	img, err := podImage(ctx, g, c.Image, c.Tag, c.GPUFlag)
	if err != nil {
		return err
	}
	return podHost(g).Update(ctx, img)
}

// PodUninstallCmd is `ov pod uninstall`.
type PodUninstallCmd struct {
	Image string `arg:"" predictor:"image" help:"Image name."`
}

func (c *PodUninstallCmd) Run(g *Globals) error {
	if err := checkImageArg(c.Image); err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	return podHost(g).Uninstall(ctx, c.Image)
}

// PodStartCmd, PodStopCmd and PodStatusCmd drive the systemd user unit.
type PodStartCmd struct {
	Image string `arg:"" predictor:"image" help:"Image name."`
}

type PodStopCmd struct {
	Image string `arg:"" predictor:"image" help:"Image name."`
}

type PodStatusCmd struct {
	Image string `arg:"" predictor:"image" help:"Image name."`
}

func (c *PodStartCmd) Run(g *Globals) error {
	if err := checkImageArg(c.Image); err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	return podHost(g).ServiceStart(ctx, c.Image)
}

func (c *PodStopCmd) Run(g *Globals) error {
	if err := checkImageArg(c.Image); err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	return podHost(g).ServiceStop(ctx, c.Image)
}

func (c *PodStatusCmd) Run(g *Globals) error {
	if err := checkImageArg(c.Image); err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	return codeErr(podHost(g).Status(ctx, c.Image))
}

// PodLogsCmd is `ov pod logs`.
type PodLogsCmd struct {
	Image  string `arg:"" predictor:"image" help:"Image name."`
	Follow bool   `short:"f" help:"Follow the log."`
}

func (c *PodLogsCmd) Run(g *Globals) error {
	if err := checkImageArg(c.Image); err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	return codeErr(podHost(g).Logs(ctx, c.Image, c.Follow))
}
