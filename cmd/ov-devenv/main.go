// Command ov-devenv brings up the same offline build environment the tests
// use (loopback registry with the debian/userbase/busybox bases mirrored as
// docker.io, a private buildkitd, task archives, optionally dockerd) for
// trying ov by hand or in a demo.
//
//	ov-devenv [--docker]                 print the environment, serve until Ctrl-C
//	ov-devenv [--docker] -- CMD ARGS...  run CMD in that environment, then tear down
//
// The printed environment is shell export lines of the variables ov (and
// buildx, docker) read, and stdout closes after them, so a shell can take
// them while the environment keeps serving: `. <(ov-devenv)` in bash, or
// `ov-devenv > env.sh &` and `. ./env.sh` once it says ready.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"mvdan.cc/sh/v3/syntax"

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
		if err := exports(os.Stdout, vars); err != nil {
			fmt.Fprintf(os.Stderr, "ov-devenv: %v\n", err)
			return 1
		}
		os.Stdout.Close() // the end of the exports for `. <(ov-devenv)`
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

// exports writes vars as shell export lines, for eval "$(ov-devenv)" or a
// paste.
func exports(w io.Writer, vars []string) error {
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		q, err := syntax.Quote(v, syntax.LangPOSIX)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		fmt.Fprintf(w, "export %s=%s\n", k, q)
	}
	return nil
}

// environ is what a command needs to use the environment: the variables ov
// reads (testenv.OvEnv), BUILDKIT_HOST, buildx's, and DOCKER_HOST with docker.
func environ(ctx context.Context, env *testenv.Env, docker bool) ([]string, error) {
	vars := append([]string{"BUILDKIT_HOST=" + env.BuildkitAddr}, env.OvEnv()...)
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
