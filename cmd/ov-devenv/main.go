// Command ov-devenv brings up the same offline build environment the tests
// use (loopback registry with the debian/userbase/busybox bases mirrored as
// docker.io, a private buildkitd, task archives, optionally dockerd) for
// trying ov by hand or in a demo.
//
//	ov-devenv [--docker]                 print the environment, serve until Ctrl-C
//	ov-devenv [--docker] -- CMD ARGS...  run CMD in that environment, then tear down
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/overthink/ov/internal/testenv"
)

func main() {
	docker := flag.Bool("docker", false, "also start a private dockerd (DOCKER_HOST)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: ov-devenv [--docker] [-- CMD ARGS...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	os.Exit(run(*docker, flag.Args()))
}

func run(docker bool, argv []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := testenv.Start(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ov-devenv: %v\n", err)
		return 1
	}
	defer env.Close()
	vars, err := environ(ctx, env, docker)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ov-devenv: %v\n", err)
		return 1
	}
	if len(argv) == 0 {
		for _, kv := range vars {
			fmt.Printf("export %s\n", kv)
		}
		fmt.Fprintln(os.Stderr, "ov-devenv: ready; Ctrl-C to stop")
		<-ctx.Done()
		return 0
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), vars...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "ov-devenv: %v\n", err)
		return 1
	}
	return 0
}

// environ is what a command needs to use the environment.
func environ(ctx context.Context, env *testenv.Env, docker bool) ([]string, error) {
	vars := []string{
		"BUILDKIT_HOST=" + env.BuildkitAddr,
		"OV_REGISTRY=" + env.Registry,
		"OV_TASK_BASE_URL=" + env.TaskBaseURL,
		"OV_TASK_SHA256_AMD64=" + env.TaskSHA256["amd64"],
		"OV_TASK_SHA256_ARM64=" + env.TaskSHA256["arm64"],
	}
	bx, err := env.BuildxEnv(ctx)
	if err != nil {
		return nil, err
	}
	vars = append(vars, bx...)
	if docker {
		host, err := env.StartDocker(ctx)
		if err != nil {
			return nil, err
		}
		vars = append(vars, "DOCKER_HOST="+host)
	}
	return vars, nil
}
