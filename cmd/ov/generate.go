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
	"github.com/overthink/ov/spec"
)

// GenerateCmd writes .build/ for docker buildx bake.
type GenerateCmd struct {
	Tag         string            `placeholder:"TAG" help:"Version for images with tag \"auto\": TAG + latest instead of CalVer + latest."`
	TaskURL     string            `name:"task-url" env:"OV_TASK_URL" placeholder:"URL" help:"Directory URL holding task_linux_<arch>.tar.gz for the bootstrap (default: the go-task v3.54.0 release)."`
	TaskSHA256  map[string]string `name:"task-sha256" env:"OV_TASK_SHA256" mapsep:"," placeholder:"amd64=HEX,arm64=HEX" help:"Pin the task archives by sha256, per architecture."`
	OfflineUser bool              `name:"offline-user" help:"Do not read base images' /etc/passwd: use the configured user, uid and gid with home /home/<user> (also OV_OFFLINE=1)."`
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
	if c.Tag != "" {
		if err := spec.CheckTag(c.Tag); err != nil {
			return userErrorf("--tag: %v", err)
		}
	}
	p, err := loadProject(g)
	if err != nil {
		return err
	}
	users, err := userLookup(c.OfflineUser)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	plans, err := plan.BuildContext(ctx, p, nil, plan.Options{
		CalVer:      g.CalVer(),
		TagOverride: c.Tag,
		Task:        plan.TaskSource{URL: c.TaskURL, SHA256: c.TaskSHA256},
		Users:       users,
	})
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
