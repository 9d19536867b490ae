package main

import (
	"fmt"

	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/merge"
	"github.com/overthink/ov/spec"
)

// MergeCmd is `ov merge`: fewer, larger layers in an image already built
// into the engine's store.
type MergeCmd struct {
	EngineFlag
	Image  string `arg:"" predictor:"image" optional:"" help:"Image name from images.yml (or --all)."`
	All    bool   `help:"Merge every enabled image with merge.auto, parents first."`
	MaxMB  int    `name:"max-mb" placeholder:"N" help:"Largest merged layer in MB, compressed (default: images.yml merge.max_mb, else 128)."`
	Tag    string `placeholder:"TAG" help:"Tag to merge (default: latest for tag auto, else the configured tag)."`
	DryRun bool   `name:"dry-run" help:"Print each layer with its size and the keep/merge grouping; change nothing."`
}

func (c *MergeCmd) Help() string {
	return `The image is read with "docker save" (or podman), consecutive layers are
grouped up to the size limit, each group of two or more becomes one layer
(whiteouts, hard links and the rest kept exact), and the result is loaded back
under the same name. Merging a merged image changes nothing, and when its
history shows that every layer stays (each one next to another was merged by
ov merge with this limit or a larger one) the image is not even saved.`
}

func (c *MergeCmd) Run(g *Globals) error {
	if c.All == (c.Image != "") {
		return userErrorf("merge: name one image, or --all")
	}
	if c.MaxMB < 0 {
		return userErrorf("--max-mb must be > 0")
	}
	p, err := loadProject(g)
	if err != nil {
		return err
	}
	var imgs []*spec.Image
	if c.All {
		for _, name := range p.Order {
			if img := p.Image(name); img.Merge != nil && img.Merge.Auto {
				imgs = append(imgs, img)
			}
		}
		if len(imgs) == 0 {
			fmt.Fprintln(g.Stderr, "merge: no enabled image has merge.auto")
			return nil
		}
	} else {
		img, err := findImage(p, c.Image)
		if err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	eng, err := c.engine()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	e := engine.Engine{Bin: eng, Stderr: g.Stderr}
	for _, img := range imgs {
		ref := runRef(img, c.Tag)
		maxMB := mergeMaxMB(img, c.MaxMB)
		fmt.Fprintf(g.Stderr, "%s (max %d MB):\n", ref, maxMB)
		_, err := merge.FromEngine(ctx, e, merge.Request{Ref: ref, MaxBytes: int64(maxMB) << 20, DryRun: c.DryRun, Report: g.Stderr})
		if err != nil {
			return err
		}
	}
	return nil
}

// mergeMaxMB applies the precedence --max-mb > images.yml > 128.
func mergeMaxMB(img *spec.Image, flag int) int {
	switch {
	case flag > 0:
		return flag
	case img.Merge != nil && img.Merge.MaxMB > 0:
		return img.Merge.MaxMB
	}
	return spec.DefaultMaxMB
}
