// Package testenv starts the real build environment that ov's tests run
// against: a loopback registry that stands in for Docker Hub (docker.io is
// mirrored to it, with Debian, user and busybox bases built here) and for
// ghcr.io (holding only FakePixi, a test double for the pixi image), a private
// buildkitd, an HTTP server with go-task release archives, buildx on a remote
// driver, and dockerd on demand. Nothing is pulled from outside: bases come
// from debootstrap and Debian packages, cached under ~/.cache/ov-testenv.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestX(t *testing.T) {
//		env := testenv.Get(t)
//		c := env.Client(t) // *client.Client on the private buildkitd
//		...
//	}
//
// It needs root and the host tools installed by `go tool task setup`.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Base images published into every Env's registry, under the names tests
// (and images.yml files) use unchanged.
const (
	// Debian is debootstrap minbase bookworm (amd64) with ca-certificates,
	// the host's proxy CAs and dpkg's force-unsafe-io (DpkgSpeedup); Cmd
	// ["bash"] like the real image.
	Debian = "docker.io/library/debian:bookworm"
	// UserBase is Debian plus user ubuntu (uid/gid 1000, home /home/ubuntu).
	UserBase = "docker.io/ovtest/userbase:bookworm"
	// Busybox is a linux/amd64 + linux/arm64 index of Debian's busybox-static.
	Busybox = "docker.io/library/busybox:latest"
	// BootcBase is Busybox shaped like a bootc (ublue) base: /usr/local is a
	// link to ../var/usrlocal, which does not exist, and /usr/bin/bootc is
	// FakeBootcScript.
	BootcBase = "docker.io/ovtest/bootc-usrlocal:latest"
)

// Env is one running build environment. Its fields are read-only.
type Env struct {
	// Dir is the private scratch directory (sockets, daemon state, logs),
	// removed by Close unless OV_TESTENV_KEEP is set.
	Dir string
	// RepoRoot is the ov checkout the tests run in.
	RepoRoot string
	// Registry is the loopback registry's host:port. buildkitd (and dockerd)
	// mirror docker.io to it, and treat it as plain-HTTP; buildkitd mirrors
	// ghcr.io to it too.
	Registry string
	// BuildkitAddr is the buildkitd address, "unix:///.../buildkitd.sock".
	BuildkitAddr string
	// BuildkitConfig is the derived buildkitd.toml the daemon runs with.
	BuildkitConfig string
	// TaskBaseURL serves task_linux_amd64.tar.gz and task_linux_arm64.tar.gz
	// (a `task` binary at the top level, like go-task releases) and
	// task_checksums.txt. No trailing slash.
	TaskBaseURL string
	// TaskSHA256 maps "amd64"/"arm64" to the hex sha256 of that archive.
	TaskSHA256 map[string]string
	// TaskVersion is the go-task version from go.mod, e.g. "v3.54.0".
	TaskVersion string

	closers []closer // run in reverse by Close

	buildxOnce sync.Once
	buildxErr  error

	dockerMu   sync.Mutex
	dockerHost string
}

// Start brings the whole environment up: registry with the bases, buildkitd
// answering ListWorkers, and the task archive server. On error everything
// already started is torn down.
func Start(ctx context.Context) (_ *Env, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("testenv: needs root (debootstrap, rootful buildkitd, dockerd)")
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	sweepStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	e := &Env{Dir: dir, RepoRoot: root}
	e.onClose("remove "+dir, func() error {
		if os.Getenv("OV_TESTENV_KEEP") != "" {
			os.Remove(filepath.Join(dir, ownerFile)) // so no later sweep takes it
			fmt.Fprintf(os.Stderr, "testenv: kept %s\n", dir)
			return nil
		}
		return removeTree(dir)
	})
	defer func() {
		if err != nil {
			e.Close()
		}
	}()

	cache, err := cacheRoot()
	if err != nil {
		return nil, err
	}
	if e.Registry, err = e.serveRegistry(); err != nil {
		return nil, err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return e.startBuildkitd(gctx) })
	g.Go(func() error { return publishBases(gctx, cache, e.Registry) })
	g.Go(func() error { return e.serveTask(gctx, cache) })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return e, nil
}

// StartServices starts the parts of an Env that sit beside a buildkitd of
// the caller's: the registry on registryAddr (the address a buildkitd.toml
// mirrors docker.io to), holding the bases when withBases, and the task
// archive server. BuildkitAddr stays empty. `go tool task demo` uses it to
// run offline against ov's managed buildkitd.
func StartServices(ctx context.Context, registryAddr string, withBases bool) (_ *Env, err error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ovservices-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, RepoRoot: root}
	e.onClose("remove "+dir, func() error { return removeTree(dir) })
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	cache, err := cacheRoot()
	if err != nil {
		return nil, err
	}
	if e.Registry, err = e.serveRegistryAt(registryAddr); err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	if withBases {
		g.Go(func() error { return publishBases(gctx, cache, e.Registry) })
	}
	g.Go(func() error { return e.serveTask(gctx, cache) })
	return e, g.Wait()
}

// Close stops every process and server the Env started (dockerd, buildkitd,
// HTTP servers) and removes Dir. It returns the first error.
func (e *Env) Close() error {
	var first error
	for i := len(e.closers) - 1; i >= 0; i-- {
		c := e.closers[i]
		start := time.Now()
		err := c.fn()
		// Teardown time counts in every test run: say where it goes.
		if d := time.Since(start); d >= time.Second {
			fmt.Fprintf(os.Stderr, "testenv: close: %s took %s\n", c.name, d.Round(time.Millisecond))
		}
		if err != nil && first == nil {
			first = fmt.Errorf("%s: %w", c.name, err)
		}
	}
	e.closers = nil
	return first
}

// closer is one teardown step of an Env.
type closer struct {
	name string
	fn   func() error
}

// onClose registers fn to run, under name, when the Env closes (in reverse
// order of registration).
func (e *Env) onClose(name string, fn func() error) {
	e.closers = append(e.closers, closer{name, fn})
}

// serve runs h on a fresh 127.0.0.1 port until Close.
func (e *Env) serve(h http.Handler) (string, error) { return e.serveAt(h, "127.0.0.1:0") }

// serveAt serves h on addr until Close.
func (e *Env) serveAt(h http.Handler, addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("testenv: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(l)
	e.onClose("http server "+l.Addr().String(), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		return nil
	})
	return l.Addr().String(), nil
}

const (
	dirPrefix = "ovtestenv-"
	ownerFile = "owner.pid"
)

// sweepStale removes the Dirs of test processes that died without Close
// (killed by a timeout, say): their leftover processes, mounts and files.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // kept on purpose, or not ours
		}
		pid, err := strconv.Atoi(string(data))
		if err != nil || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		killUnder(dir)
		removeTree(dir)
	}
}

// repoRoot walks up from the working directory to the go.mod that owns
// hack/buildkitd.toml (tests run in their package directory).
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if fileExists(filepath.Join(d, "go.mod")) && fileExists(filepath.Join(d, "hack", "buildkitd.toml")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("testenv: no go.mod with hack/buildkitd.toml above %s", wd)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
