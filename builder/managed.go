package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// The managed builder is a buildkitd that ov starts itself when no other
// builder is configured. It runs detached (its own session, so it outlives
// the ov that started it and Ctrl-C on a build does not reach it) and is
// reused by every later build until `ov builder stop`. Everything lives in
// one state directory under the user's cache dir:
//
//	<UserCacheDir>/ov/buildkitd/
//	  buildkitd.sock  the daemon's socket
//	  buildkitd.pid   its pid
//	  buildkitd.log   its output, truncated at each start
//	  lock            serialises start/stop between concurrent ov processes
//	  root/           buildkitd's state and build cache

// ErrNotRunning is returned by Stop when there is no managed builder.
var ErrNotRunning = errors.New("managed buildkitd is not running")

// State describes the managed builder.
type State struct {
	Running bool   // its process is alive
	PID     int    // 0 when not running
	Addr    string // unix:// address of its socket
	Dir     string // state directory
	Config  string // buildkitd.toml it runs (or would run) with; "" = defaults
	Log     string // log file
}

// Bounds on managed daemon start and stop.
var (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
)

const maxSocketPath = 107 // sun_path is 108 bytes with its NUL on Linux

// paths are the files of the managed builder's state directory.
type paths struct {
	dir, sock, pid, log, lock, root, otel string
}

func statePaths() (paths, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return paths{}, fmt.Errorf("managed buildkitd: no cache directory for its state: %w", err)
	}
	dir := filepath.Join(cache, "ov", "buildkitd")
	p := paths{
		dir:  dir,
		sock: filepath.Join(dir, "buildkitd.sock"),
		pid:  filepath.Join(dir, "buildkitd.pid"),
		log:  filepath.Join(dir, "buildkitd.log"),
		lock: filepath.Join(dir, "lock"),
		root: filepath.Join(dir, "root"),
		otel: filepath.Join(dir, "otel-grpc.sock"),
	}
	if len(p.sock) > maxSocketPath || len(p.otel) > maxSocketPath {
		return paths{}, fmt.Errorf("managed buildkitd: socket path %s is too long for a unix socket (max %d bytes): set XDG_CACHE_HOME to a shorter directory", p.otel, maxSocketPath)
	}
	return p, nil
}

func (p paths) addr() string { return "unix://" + p.sock }

// Start starts the managed builder unless it is already running and
// answering, and returns its state. Concurrent callers (in this process or
// others) serialise on a lock file, so only one daemon is ever started.
func Start(ctx context.Context, o Options) (State, error) {
	p, err := statePaths()
	if err != nil {
		return State{}, err
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return State{}, fmt.Errorf("managed buildkitd: %w", err)
	}
	unlock, err := p.acquire(ctx)
	if err != nil {
		return State{}, err
	}
	defer unlock()

	st := p.state()
	if st.Running {
		c, err := Dial(ctx, st.Addr, Options{})
		if err == nil {
			c.Close()
			return st, nil
		}
		if ctx.Err() != nil {
			return State{}, ctx.Err()
		}
		// Alive but deaf (wedged, or its socket was deleted): replace it.
		if err := p.terminate(st.PID); err != nil {
			return State{}, err
		}
	}
	p.clean()

	cfg, err := configFile(o)
	if err != nil {
		return State{}, err
	}
	argv, err := command(o, p, cfg)
	if err != nil {
		return State{}, err
	}
	return p.spawn(ctx, argv, cfg)
}

// Stop stops the managed builder (SIGTERM, then SIGKILL if it lingers) and
// removes its socket and pid file; the build cache under root/ stays. It
// returns ErrNotRunning when there was nothing to stop.
func Stop(ctx context.Context, o Options) error {
	p, err := statePaths()
	if err != nil {
		return err
	}
	if _, err := os.Stat(p.dir); errors.Is(err, fs.ErrNotExist) {
		return ErrNotRunning
	}
	unlock, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	st := p.state()
	if !st.Running {
		p.clean()
		return ErrNotRunning
	}
	if err := p.terminate(st.PID); err != nil {
		return err
	}
	p.clean()
	return nil
}

// Status reports the managed builder's state without starting or
// contacting it.
func Status(ctx context.Context, o Options) (State, error) {
	p, err := statePaths()
	if err != nil {
		return State{}, err
	}
	st := p.state()
	if !st.Running {
		if st.Config, err = configFile(o); err != nil {
			return State{}, err
		}
	}
	return st, nil
}

// acquire takes the state directory's lock, waiting for whoever holds it
// (typically another ov starting the daemon) unless ctx ends first.
func (p paths) acquire(ctx context.Context) (func(), error) {
	l := flock.New(p.lock, flock.SetPermissions(0o600))
	ok, err := l.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil || !ok {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("managed buildkitd: lock %s: %v", p.lock, err)
	}
	return func() { l.Unlock() }, nil
}

// state reads the pid file and checks the process is alive and is our
// daemon (not an unrelated process that reused the pid).
func (p paths) state() State {
	st := State{Addr: p.addr(), Dir: p.dir, Log: p.log}
	b, err := os.ReadFile(p.pid)
	if err != nil {
		return st
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !alive(pid) {
		return st
	}
	args, err := cmdline(pid)
	if err == nil && !contains(args, p.addr()) {
		return st
	}
	st.Running, st.PID = true, pid
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			st.Config = args[i+1]
		}
	}
	return st
}

// clean removes what a dead daemon leaves behind; buildkitd refuses to
// start on a stale socket.
func (p paths) clean() {
	os.Remove(p.sock)
	os.Remove(p.otel)
	os.Remove(p.pid)
}

// spawn starts argv detached, records its pid and waits until it answers.
func (p paths) spawn(ctx context.Context, argv []string, cfg string) (State, error) {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return State{}, fmt.Errorf("managed buildkitd: %w", err)
	}
	defer logf.Close() // the child holds its own copy

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = withSbinPath(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return State{}, fmt.Errorf("managed buildkitd: start %s: %w", argv[0], err)
	}
	// Reap it should it die while we run, so it never lingers as a zombie.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	pid := cmd.Process.Pid
	fail := func(err error) (State, error) {
		cmd.Process.Kill()
		<-exited
		p.clean()
		return State{}, err
	}
	if err := writeFileAtomic(p.pid, []byte(strconv.Itoa(pid)+"\n")); err != nil {
		return fail(fmt.Errorf("managed buildkitd: %w", err))
	}

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			p.clean()
			return State{}, fmt.Errorf("managed buildkitd exited while starting (%v); last lines of %s:\n%s", err, p.log, tail(p.log, 15))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-deadline.C:
			return fail(fmt.Errorf("managed buildkitd did not answer on %s within %s; last lines of %s:\n%s", p.sock, startTimeout, p.log, tail(p.log, 15)))
		case <-tick.C:
			if _, err := os.Stat(p.sock); err != nil {
				continue
			}
			c, err := Dial(ctx, p.addr(), Options{})
			if err != nil {
				continue
			}
			c.Close()
			return State{Running: true, PID: pid, Addr: p.addr(), Dir: p.dir, Config: cfg, Log: p.log}, nil
		}
	}
}

// terminate stops pid: SIGTERM, then SIGKILL if it has not exited in time.
func (p paths) terminate(pid int) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := syscall.Kill(pid, sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("managed buildkitd: stop pid %d: %w", pid, err)
		}
		for end := time.Now().Add(stopTimeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if !alive(pid) {
				return nil
			}
		}
	}
	return fmt.Errorf("managed buildkitd: pid %d survived SIGKILL", pid)
}

// configFile picks the managed daemon's buildkitd.toml: the explicit one,
// the project's hack/buildkitd.toml, the user's, or none (defaults).
func configFile(o Options) (string, error) {
	if o.ConfigFile != "" {
		if _, err := os.Stat(o.ConfigFile); err != nil {
			return "", fmt.Errorf("buildkitd config: %w", err)
		}
		return filepath.Abs(o.ConfigFile)
	}
	var candidates []string
	if o.ProjectDir != "" {
		candidates = append(candidates, filepath.Join(o.ProjectDir, "hack", "buildkitd.toml"))
	}
	if dir, err := os.UserConfigDir(); err == nil {
		candidates = append(candidates, filepath.Join(dir, "ov", "buildkitd.toml"))
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return filepath.Abs(c)
		}
	}
	return "", nil
}

// command builds the daemon's argv: buildkitd (from PATH, else beside the
// ov binary or in the project's bin/, where `go tool task setup` puts it),
// wrapped in rootlesskit when not root.
func command(o Options, p paths, cfg string) ([]string, error) {
	bin, err := exec.LookPath("buildkitd")
	var dirs []string
	if self, serr := os.Executable(); serr == nil {
		dirs = append(dirs, filepath.Dir(self))
	}
	if o.ProjectDir != "" {
		dirs = append(dirs, filepath.Join(o.ProjectDir, "bin"))
	}
	for _, d := range dirs {
		if err == nil {
			break
		}
		local := filepath.Join(d, "buildkitd")
		if fi, serr := os.Stat(local); serr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			bin, err = filepath.Abs(local)
		}
	}
	if err != nil {
		return nil, errors.New("buildkitd not found: run `go tool task setup` (builds it from go.mod) or install buildkit, or pass --builder")
	}

	argv := []string{bin, "--root", p.root, "--addr", p.addr(), "--otel-socket-path", p.otel}
	if cfg != "" {
		argv = append(argv, "--config", cfg)
	}
	if os.Geteuid() != 0 {
		rk, err := exec.LookPath("rootlesskit")
		if err != nil {
			return nil, errors.New("managed buildkitd needs root: run ov with sudo, install rootlesskit for a rootless buildkitd, or pass --builder to use a running one")
		}
		argv = append([]string{rk}, argv...)
	}
	return argv, nil
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist) || !procMounted()
	}
	// Fields after the parenthesised command name: state first.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// cmdline returns pid's argv from /proc.
func cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// withSbinPath makes sure the daemon finds runc even when ov runs with a
// user PATH that lacks the sbin directories.
func withSbinPath(env []string) []string {
	out := make([]string, 0, len(env)+1)
	var path []string
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = filepath.SplitList(p)
			continue
		}
		out = append(out, kv)
	}
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if !contains(path, d) {
			path = append(path, d)
		}
	}
	return append(out, "PATH="+strings.Join(path, string(filepath.ListSeparator)))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// tail returns the last n lines of a file, for startup failures.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 8192 {
		f.Seek(-8192, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
