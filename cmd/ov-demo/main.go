// Command ov-demo is `go tool task demo`: it builds the example family in
// examples/hello with `ov build` through ov's managed buildkitd, loads it
// into docker and runs a command in the child image.
//
// It works offline: when Docker Hub is out of reach, debian:bookworm is
// built with debootstrap and served from the loopback registry that
// hack/buildkitd.toml mirrors docker.io to (127.0.0.1:5000), so images.yml
// stays the same either way. The bootstrap's task archives are served
// locally too. With no docker daemon answering, a private dockerd is started
// for the run.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/overthink/ov/internal/testenv"
)

const (
	project  = "examples/hello"
	registry = "127.0.0.1:5000" // hack/buildkitd.toml mirrors docker.io here
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	ov := filepath.Join(root, "bin", "ov")
	online := reachable(ctx, "docker.io/library/debian:bookworm")
	if busy(registry) {
		return fmt.Errorf("%s is in use: the demo serves its registry there (hack/buildkitd.toml mirrors docker.io to it)", registry)
	}
	say("serving the loopback registry on %s (bases: %v) and task archives", registry, map[bool]string{true: "pulled from Docker Hub", false: "debootstrap, offline"}[online])
	env, err := testenv.StartServices(ctx, registry, !online)
	if err != nil {
		return err
	}
	defer env.Close()

	vars := append(env.OvEnv(), "OV_BUILDKITD_CONFIG="+filepath.Join(root, "hack", "buildkitd.toml"))
	if exec.CommandContext(ctx, "docker", "info").Run() != nil {
		say("no docker daemon answers: starting a private dockerd for the demo")
		host, err := env.StartDocker(ctx)
		if err != nil {
			return err
		}
		vars = append(vars, "DOCKER_HOST="+host)
	}

	say("ov build --load (managed buildkitd: ov builder status shows it)")
	if err := ovRun(ctx, ov, vars, "-C", project, "build", "--load", "--progress", "plain"); err != nil {
		return err
	}
	say("ov shell hello-child -c ...")
	return ovRun(ctx, ov, vars, "-C", project, "shell", "hello-child", "-w", project, "-c",
		`greet && echo "about: $(jq -c . /etc/ov/about.json)" && echo "PATH=$PATH"`)
}

func ovRun(ctx context.Context, ov string, vars []string, args ...string) error {
	cmd := exec.CommandContext(ctx, ov, args...)
	cmd.Env = append(os.Environ(), vars...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ov %v: %w", args, err)
	}
	return nil
}

// reachable says whether ref's registry answers within a few seconds.
func reachable(ctx context.Context, ref string) bool {
	r, err := name.ParseReference(ref)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	_, err = remote.Head(r, remote.WithContext(ctx))
	return err == nil
}

func busy(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}
