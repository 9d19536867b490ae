package testenv

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

// The Env of this test binary: started by the first Get, closed by Run.
var (
	once    sync.Once
	current *Env
	failed  error
)

// StartTimeout bounds the start in Get. A cold start (debootstrap,
// cross-building task) takes minutes on 2 cores; a warm one seconds.
var StartTimeout = 45 * time.Minute

// Main is a whole TestMain: os.Exit(Run(m)).
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests and tears down the Env if one of them started it. A
// package whose tests need no Env starts none.
func Run(m *testing.M) int {
	code := m.Run()
	if current != nil {
		if err := current.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: close: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Get returns the test binary's Env, starting it on first use; a failed
// start fails every test that needs it (no skipping). With -short
// (everyday work, never CI) it skips the test instead: -short runs the
// tests that need no buildkitd, registry or container engine.
func Get(tb testing.TB) *Env {
	tb.Helper()
	SkipShort(tb, "needs buildkitd, a registry and dockerd")
	once.Do(func() { current, failed = startOnce() })
	if failed != nil {
		tb.Fatalf("testenv: %v", failed)
	}
	return current
}

// SkipShort skips tb under -short, saying why: -short is for everyday work
// (seconds, no container engine or buildkitd); CI runs everything.
func SkipShort(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip(why + ": not run with -short")
	}
}

func startOnce() (*Env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	start := time.Now()
	env, err := Start(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "testenv: ready in %s (registry %s, buildkitd %s)\n",
		time.Since(start).Round(time.Millisecond), env.Registry, env.BuildkitAddr)
	// An interrupted `go test` must not leave daemons behind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		env.Close()
		os.Exit(1)
	}()
	return env, nil
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
