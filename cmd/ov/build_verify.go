package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/client"

	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
)

// checkVerify rejects flags --verify does not combine with: it writes no
// image anywhere, and builds both ways itself.
func (c *BuildCmd) checkVerify() error {
	if !c.Verify {
		return nil
	}
	flags := []struct {
		name string
		set  bool
	}{{"--push", c.Push}, {"--load", c.Load}, {"--output", c.Output != ""}, {"--no-detach", c.NoDetach}, {"--explain", c.Explain}}
	for _, f := range flags {
		if f.set {
			return userErrorf("--verify builds each image twice to compare them and keeps neither: it does not combine with %s", f.name)
		}
	}
	return nil
}

// verifyTemp is the prefix of the temporary directory both verify commands
// build into under .build/: a name the build lock's sweep removes, should
// the run be killed.
const verifyTemp = ".verify.tmp-"

// verify is ov build --verify (see llb.Verify): every difference between
// the detached and the one-chain build of the targets is printed with the
// layers that wrote the path and the depends line that would fix it.
func (c *BuildCmd) verify(ctx context.Context, g *Globals, bc *client.Client, dir string, opt llb.BuildOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, verifyTemp)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	prog, err := c.startProgress(ctx, g)
	if err != nil {
		return err
	}
	opt.Status, opt.Warn = prog.status, prog.warn
	diffs, err := llb.Verify(ctx, bc, opt, tmp)
	prog.done(g.Stderr)
	if err != nil {
		if ctx.Err() != nil {
			return exitStatus(130)
		}
		return &userError{err: err}
	}
	byName := map[string]*plan.Image{}
	for _, img := range opt.Family {
		byName[img.Name] = img
	}
	for _, d := range diffs {
		fmt.Fprint(g.Stdout, formatDifference(byName[d.Image], d))
	}
	if len(diffs) > 0 {
		return userErrorf("verify: %d difference(s) between the detached and the one-chain builds", len(diffs))
	}
	fmt.Fprintf(g.Stderr, "verified %s: each builds detached exactly as in one chain\n", strings.Join(opt.Targets, ", "))
	return nil
}

// formatDifference is one difference as verify prints it.
func formatDifference(img *plan.Image, d llb.Difference) string {
	var sb strings.Builder
	what := d.Path
	if what == "" {
		what = "the image config"
	}
	fmt.Fprintf(&sb, "image %s (%s): %s differs\n  detached:  %s\n  one chain: %s\n", d.Image, d.Platform, what, d.Detached, d.Chain)
	if len(d.Writers) > 0 {
		ws := make([]string, len(d.Writers))
		for i, w := range d.Writers {
			ws[i] = w
			if w == "" {
				ws[i] = "(base image or image step)"
			}
		}
		fmt.Fprintf(&sb, "  written by: %s\n", strings.Join(ws, ", "))
	}
	f := d.Fix
	switch {
	case f.Layer == "":
	case len(f.Add) > 0:
		fmt.Fprintf(&sb, "  fix: %s: depends: [%s]\n", layerYml(img, f.Layer), strings.Join(f.Depends, ", "))
	default:
		fmt.Fprintf(&sb, "  fix: layer %s reads a file of a layer it does not depend on, one of: %s; add it to %s: depends\n",
			f.Layer, strings.Join(f.Candidates, ", "), layerYml(img, f.Layer))
	}
	return sb.String()
}

// layerYml is where a layer's depends are written.
func layerYml(img *plan.Image, layer string) string {
	if img != nil {
		for _, c := range img.Contexts {
			if c.Layer == layer && c.Rel != "" {
				return filepath.Join(c.Rel, "layer.yml")
			}
		}
	}
	return "layers/" + layer + "/layer.yml"
}
