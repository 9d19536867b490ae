package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/generate"
	"github.com/overthink/ov/plan"
)

// GenerateCmd writes .build/ for docker buildx bake.
type GenerateCmd struct {
	PlanFlags `embed:""`
}

func (c *GenerateCmd) Help() string {
	return `Writes .build/docker-bake.hcl and, per enabled image, .build/<image>/Containerfile
plus its supervisord fragments and traefik routes, then build with
"docker buildx bake -f .build/docker-bake.hcl". Files are replaced atomically;
a second run with the same --tag writes identical files. Directories of
disabled or removed images are deleted. ov never writes through a symbolic
link under .build/, and one ov at a time writes it (the others wait).

For an external base, the user at the configured uid is read from the base
image's /etc/passwd (cached per base digest). OV_REGISTRY_MIRRORS
("docker.io=127.0.0.1:5000,...") sends those lookups through mirrors first.`
}

func (c *GenerateCmd) Run(g *Globals) error {
	collectLess()
	opt, err := c.options(g)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	p, opt, err := loadWithEpoch(ctx, g, opt)
	if err != nil {
		return err
	}
	plans, err := plan.BuildContext(ctx, p, nil, opt)
	if err != nil {
		return planError(err)
	}
	lock, err := lockBuildDir(ctx, g, p)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := generate.Write(p.Dir, plans, p); err != nil {
		var long *generate.LineError
		if errors.As(err, &long) {
			return userErrorf("%v", err)
		}
		return fmt.Errorf("generate: %w", err)
	}
	names := make([]string, len(plans))
	for i, pl := range plans {
		names[i] = pl.Name
	}
	fmt.Fprintf(g.Stderr, "generated %s: %d images (%s)\n", generate.BakePath, len(plans), strings.Join(names, ", "))
	return nil
}

// userLookup is how commands resolve the users of external bases: from
// the base image's /etc/passwd, or offline (--offline-user, OV_OFFLINE=1)
// as the configured user with home /home/<user>.
func userLookup(offlineFlag bool) (plan.UserLookup, error) {
	offline, err := envBool("OV_OFFLINE")
	if err != nil {
		return nil, userErrorf("%v", err)
	}
	if offlineFlag || offline {
		return baseuser.Offline, nil
	}
	return baseuser.Resolver(baseuser.Options{}), nil
}

// envBool reads a boolean environment variable; unset or empty is false.
func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1/true or 0/false", name, v)
	}
	return b, nil
}
