package builder

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// isolate gives the test a world with no builder configured: BUILDKIT_HOST
// unset, nothing at the default socket, and cache/config/home dirs of its
// own. It returns that private root.
func isolate(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv(EnvHost, "")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(tmp, "cache"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "config"))
	t.Setenv("HOME", filepath.Join(tmp, "home"))
	old := DefaultAddr
	DefaultAddr = "unix://" + filepath.Join(tmp, "no-buildkitd.sock")
	t.Cleanup(func() { DefaultAddr = old })
	return tmp
}

// project makes an ov project dir whose bin/buildkitd is the real one and
// whose hack/buildkitd.toml is a small valid config.
func project(t *testing.T, tmp string) (dir, config string) {
	t.Helper()
	dir = filepath.Join(tmp, "project")
	for _, d := range []string{"bin", "hack"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(buildkitdBinary(t), filepath.Join(dir, "bin", "buildkitd")); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(dir, "hack", "buildkitd.toml")
	if err := os.WriteFile(config, []byte("[worker.containerd]\n  enabled = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, config
}

// managed isolates the test, makes a project and makes sure whatever
// managed builder the test starts is stopped at the end.
func managed(t *testing.T) (Options, string) {
	t.Helper()
	tmp := isolate(t)
	// Binary discovery must reach the project's bin/, not a system buildkitd.
	t.Setenv("PATH", "/usr/bin:/bin")
	dir, config := project(t, tmp)
	o := Options{ProjectDir: dir}
	t.Cleanup(func() {
		if err := Stop(context.Background(), o); err != nil && !errors.Is(err, ErrNotRunning) {
			t.Error(err)
		}
		// Managed daemons are detached, so nothing else reaps strays.
		p, _ := statePaths()
		for _, pid := range processesServing(p.addr()) {
			t.Errorf("stray buildkitd pid %d still serving %s after Stop", pid, p.addr())
			syscall.Kill(pid, syscall.SIGKILL)
		}
		unmountUnder(t, tmp)
	})
	return o, config
}

func TestManagedBuilder(t *testing.T) {
	ctx := context.Background()
	o, config := managed(t)

	if c, _, err := Lookup(ctx, o); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Lookup before any start: %v, %v; want ErrNotRunning", c, err)
	}
	c1, err := Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	solveHi(t, c1)

	st1, err := Status(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !st1.Running || st1.PID == 0 {
		t.Fatalf("after Connect: state %+v, want a running managed builder", st1)
	}
	if st1.Config != config {
		t.Errorf("config = %q, want the project's %q", st1.Config, config)
	}
	cache, _ := os.UserCacheDir()
	if want := filepath.Join(cache, "ov", "buildkitd"); st1.Dir != want {
		t.Errorf("state dir = %q, want %q", st1.Dir, want)
	}
	// Detached: its own session, so it outlives ov and ignores our Ctrl-C.
	if sid, err := unix.Getsid(st1.PID); err != nil || sid != st1.PID {
		t.Errorf("getsid(%d) = %d, %v: want its own session", st1.PID, sid, err)
	}

	c2, err := Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	c3, addr, err := Lookup(ctx, o)
	if err != nil || addr != st1.Addr {
		t.Fatalf("Lookup with the managed builder running: %q, %v; want %q", addr, err, st1.Addr)
	}
	c3.Close()
	st2, err := Status(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if st2.PID != st1.PID {
		t.Fatalf("second Connect: pid %d, want the first builder (%d) reused", st2.PID, st1.PID)
	}

	if err := Stop(ctx, o); err != nil {
		t.Fatal(err)
	}
	if alive(st1.PID) {
		t.Errorf("pid %d still alive after Stop", st1.PID)
	}
	sock := filepath.Join(st1.Dir, "buildkitd.sock")
	for _, f := range []string{sock, filepath.Join(st1.Dir, "buildkitd.pid")} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after Stop (%v)", f, err)
		}
	}
	if st, _ := Status(ctx, o); st.Running {
		t.Errorf("Status after Stop: %+v", st)
	}
	if err := Stop(ctx, o); !errors.Is(err, ErrNotRunning) {
		t.Errorf("second Stop: %v, want ErrNotRunning", err)
	}
}

func TestManagedConcurrentStart(t *testing.T) {
	o, _ := managed(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Connect(context.Background(), o)
			if err == nil {
				c.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := Status(context.Background(), o)
	if err != nil || !st.Running {
		t.Fatalf("state %+v, %v", st, err)
	}
	if got := len(processesServing(st.Addr)); got != 1 {
		t.Fatalf("%d buildkitd processes serve %s, want 1", got, st.Addr)
	}
}

func TestManagedStalePIDFile(t *testing.T) {
	ctx := context.Background()
	o, _ := managed(t)
	cache, _ := os.UserCacheDir()
	dir := filepath.Join(cache, "ov", "buildkitd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A live pid that is not our daemon (init), and a dead socket file.
	if err := os.WriteFile(filepath.Join(dir, "buildkitd.pid"), []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "buildkitd.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, _ := Status(ctx, o); st.Running {
		t.Fatalf("Status believes pid 1 is the managed builder: %+v", st)
	}
	st, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID == 1 || !alive(st.PID) {
		t.Fatalf("Start: %+v", st)
	}
}

func TestManagedMissingBinary(t *testing.T) {
	tmp := isolate(t)
	t.Setenv("PATH", t.TempDir())
	_, err := Connect(context.Background(), Options{ProjectDir: tmp})
	want := "buildkitd not found: run `go tool task setup` (builds it from go.mod) or install buildkit, or pass --builder"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestManagedConfigChoice(t *testing.T) {
	tmp := isolate(t)
	proj := filepath.Join(tmp, "proj")
	user := filepath.Join(tmp, "config", "ov", "buildkitd.toml")
	hack := filepath.Join(proj, "hack", "buildkitd.toml")
	explicit := filepath.Join(tmp, "explicit.toml")

	check := func(o Options, want string) {
		t.Helper()
		got, err := configFile(o)
		if err != nil || got != want {
			t.Fatalf("configFile(%+v) = %q, %v; want %q", o, got, err, want)
		}
	}
	o := Options{ProjectDir: proj}
	check(o, "")
	write(t, user)
	check(o, user)
	write(t, hack)
	check(o, hack)
	write(t, explicit)
	check(Options{ProjectDir: proj, ConfigFile: explicit}, explicit)

	_, err := configFile(Options{ConfigFile: filepath.Join(tmp, "absent.toml")})
	if err == nil {
		t.Fatal("missing explicit config: no error")
	}
}

func write(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
