package testenv

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

// current is the Env started by Main for this test binary.
var current *Env

// StartTimeout bounds Start in Main. A cold start (debootstrap, cross-building
// task) takes minutes on 2 cores; a warm one seconds.
var StartTimeout = 45 * time.Minute

// Main is a whole TestMain: it starts the Env, runs the tests, tears the Env
// down and exits. A failed start fails the package (no skipping).
func Main(m *testing.M) {
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	start := time.Now()
	env, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "testenv: ready in %s (registry %s, buildkitd %s)\n",
		time.Since(start).Round(time.Millisecond), env.Registry, env.BuildkitAddr)
	current = env

	// An interrupted `go test` must not leave daemons behind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		if _, ok := <-sig; ok {
			env.Close()
			os.Exit(1)
		}
	}()

	code := m.Run()
	signal.Stop(sig)
	close(sig)
	if err := env.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: close: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Get returns the Env started by Main; it fails the test if TestMain did not
// call Main.
func Get(tb testing.TB) *Env {
	tb.Helper()
	if current == nil {
		tb.Fatal("testenv: no environment: call testenv.Main(m) from TestMain")
	}
	return current
}

// Client returns a buildkit client on the Env's daemon, closed when tb ends.
func (e *Env) Client(tb testing.TB) *client.Client {
	tb.Helper()
	c, err := e.NewClient(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
