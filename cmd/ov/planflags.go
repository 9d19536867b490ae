package main

import (
	"context"
	"path/filepath"

	"github.com/overthink/ov/build"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// PlanFlags are the planning flags of ov generate and ov build: both must
// plan the same images from the same flags.
type PlanFlags struct {
	Tag         string            `placeholder:"TAG" help:"Version for images with tag \"auto\": TAG + latest instead of CalVer + latest."`
	TaskURL     string            `name:"task-url" env:"OV_TASK_URL" placeholder:"URL" help:"Directory URL holding task_linux_<arch>.tar.gz for the bootstrap (default: the go-task v3.54.0 release)."`
	TaskSHA256  map[string]string `name:"task-sha256" env:"OV_TASK_SHA256" mapsep:"," placeholder:"amd64=HEX,arm64=HEX" help:"Pin the task archives by sha256, per architecture."`
	OfflineUser bool              `name:"offline-user" help:"Do not read base images' /etc/passwd: use the configured user, uid and gid with home /home/<user> (also OV_OFFLINE=1)."`
	Epoch       string            `name:"source-date-epoch" env:"SOURCE_DATE_EPOCH" placeholder:"SECONDS" help:"The images' time (Unix seconds): their created and history times, and no file in their layers newer. Every step sees it as SOURCE_DATE_EPOCH (a change reruns them). Default: the time of the last commit changing images.yml or layers/ when the project is a git checkout without uncommitted changes to them, else now; the default stays out of the steps and their cache."`
}

// options checks the flags and returns the plan options for a run at g's
// time.
func (f PlanFlags) options(g *Globals) (plan.Options, error) {
	if f.Tag != "" {
		if err := spec.CheckTag(f.Tag); err != nil {
			return plan.Options{}, userErrorf("--tag: %v", err)
		}
	}
	users, err := userLookup(f.OfflineUser)
	if err != nil {
		return plan.Options{}, err
	}
	var epoch *plan.Epoch
	if f.Epoch != "" {
		if epoch, err = build.ParseEpoch(f.Epoch); err != nil {
			return plan.Options{}, userErrorf("--source-date-epoch: %v", err)
		}
	}
	return plan.Options{
		CalVer:      g.CalVer(),
		TagOverride: f.Tag,
		Task:        plan.TaskSource{URL: f.TaskURL, SHA256: f.TaskSHA256},
		Users:       users,
		Epoch:       epoch,
	}, nil
}

// loadWithEpoch is loadProject and opt with the project's origin
// (repository and commit) and its default epoch when no flag or
// environment variable gave one (build.FromGit). git runs while the
// project loads: each takes tens of milliseconds on a large project.
func loadWithEpoch(ctx context.Context, g *Globals, opt plan.Options) (*spec.Project, plan.Options, error) {
	dir, err := filepath.Abs(g.Dir) // as spec.Load makes p.Dir
	if err != nil {
		return nil, opt, err
	}
	fromGit := make(chan func(), 1)
	go func() {
		e, o := build.FromGit(ctx, dir, g.Now)
		fromGit <- func() {
			if opt.Epoch == nil {
				opt.Epoch = e
			}
			opt.Origin = o
		}
	}()
	p, err := loadProject(g)
	(<-fromGit)() // git may write its cache in .build/: done before returning
	return p, opt, err
}

// offline reports whether ov must not ask registries about bases
// (--offline-user or OV_OFFLINE=1).
func (f PlanFlags) offline() bool {
	env, _ := envBool("OV_OFFLINE")
	return f.OfflineUser || env
}
