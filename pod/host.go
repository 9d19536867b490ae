package pod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/overthink/ov/engine"
)

// Host runs images on this machine. The zero value is not usable; start
// from NewHost and override fields in tests.
type Host struct {
	Runner     engine.Runner
	Engine     string // engine.Docker or engine.Podman, for shell/start/stop
	QuadletDir string // "" means QuadletDir()
	User       string // login name for the linger check; "" means the current user

	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// NewHost runs real commands on the process's own standard streams.
func NewHost(eng string) *Host {
	return &Host{Runner: engine.ExecRunner{}, Engine: eng, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
}

// Shell runs bash in img (interactive, or `bash -c command`) and returns
// its exit code, for ov to exit with.
func (h *Host) Shell(ctx context.Context, img Image, workspace, command string) (int, error) {
	kind := DetectStdin(h.Stdin)
	argv, err := ShellArgv(h.Engine, img, ShellOptions{Workspace: workspace, Command: command, Stdin: kind})
	if err != nil {
		return 0, err
	}
	var stdin io.Reader
	if kind != StdinNone {
		stdin = h.Stdin
	}
	return h.Runner.Run(ctx, argv, engine.Stdio{Stdin: stdin, Stdout: h.Stdout, Stderr: h.Stderr})
}

// Start runs img's supervisord detached as container ov-<image>.
func (h *Host) Start(ctx context.Context, img Image, workspace string) error {
	argv, err := StartArgv(h.Engine, img, workspace)
	if err != nil {
		return err
	}
	return h.check(ctx, argv, io.Discard)
}

// Stop stops (and so removes) container ov-<image>.
func (h *Host) Stop(ctx context.Context, image string) error {
	argv, err := StopArgv(h.Engine, image)
	if err != nil {
		return err
	}
	return h.check(ctx, argv, io.Discard)
}

// Install makes img a systemd user service: the image is copied from
// docker when podman lacks it, the quadlet is written, systemd reloaded.
// Nothing is written when the user session or the image is missing.
func (h *Host) Install(ctx context.Context, img Image, workspace string) error {
	text, err := Quadlet(img, workspace)
	if err != nil {
		return err
	}
	dir, err := h.quadletDir()
	if err != nil {
		return err
	}
	if err := h.userSession(ctx); err != nil {
		return err
	}
	h.warnLinger(ctx, img.Name)
	has, err := h.podmanHas(ctx, img.Ref)
	if err != nil {
		return err
	}
	if !has {
		if err := h.transfer(ctx, img.Ref); err != nil {
			return err
		}
	}
	path, err := writeQuadlet(dir, img.Name, text)
	if err != nil {
		return err
	}
	if err := h.systemctl(ctx, "daemon-reload", ""); err != nil {
		return err
	}
	fmt.Fprintf(h.Stderr, "installed %s (service %s); start it with: ov pod start %s\n", path, ServiceName(img.Name), img.Name)
	return nil
}

// Update copies img from docker again (after a rebuild), rewrites the
// quadlet for the current ref and ports (keeping the installed workspace)
// and restarts the service if it is running.
func (h *Host) Update(ctx context.Context, img Image) error {
	if err := img.Validate(); err != nil {
		return err
	}
	dir, err := h.quadletDir()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, QuadletFileName(img.Name))
	ws, err := InstalledWorkspace(path, img.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not installed (no %s): run `ov pod install %s` first", ContainerName(img.Name), path, img.Name)
	}
	if err != nil {
		return err
	}
	text, err := Quadlet(img, ws)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := h.userSession(ctx); err != nil {
		return err
	}
	if err := h.transfer(ctx, img.Ref); err != nil {
		return err
	}
	if _, err := writeQuadlet(dir, img.Name, text); err != nil {
		return err
	}
	if err := h.systemctl(ctx, "daemon-reload", ""); err != nil {
		return err
	}
	active, err := h.active(ctx, img.Name)
	if err != nil {
		return err
	}
	if !active {
		fmt.Fprintf(h.Stderr, "updated %s; it is not running: start it with: ov pod start %s\n", ServiceName(img.Name), img.Name)
		return nil
	}
	if err := h.systemctl(ctx, "restart", img.Name); err != nil {
		return err
	}
	fmt.Fprintf(h.Stderr, "updated and restarted %s\n", ServiceName(img.Name))
	return nil
}

// Uninstall stops the service (if it runs), removes the quadlet and
// reloads systemd.
func (h *Host) Uninstall(ctx context.Context, image string) error {
	if err := ValidateName(image); err != nil {
		return err
	}
	dir, err := h.quadletDir()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, QuadletFileName(image))
	data, err := os.ReadFile(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return err
	}
	if !missing {
		if err := checkOurs(path, data, image); err != nil {
			return err
		}
	}
	argv := SystemctlArgv("stop", image)
	code, stderr, err := h.run(ctx, argv, io.Discard)
	if err != nil {
		return err
	}
	if code != 0 && code != exitUnitNotLoaded {
		return h.systemctlError(argv, code, stderr)
	}
	if !missing {
		if err := os.Remove(path); err != nil {
			return err
		}
	}
	if err := h.systemctl(ctx, "daemon-reload", ""); err != nil {
		return err
	}
	if missing {
		fmt.Fprintf(h.Stderr, "%s was not installed (no %s)\n", ContainerName(image), path)
	} else {
		fmt.Fprintf(h.Stderr, "removed %s\n", path)
	}
	return nil
}

// ServiceStart and ServiceStop are `systemctl --user start|stop`.
func (h *Host) ServiceStart(ctx context.Context, image string) error {
	return h.unitVerb(ctx, "start", image)
}

func (h *Host) ServiceStop(ctx context.Context, image string) error {
	return h.unitVerb(ctx, "stop", image)
}

// Status shows `systemctl --user status` and returns its exit code (3:
// not running), for ov to exit with.
func (h *Host) Status(ctx context.Context, image string) (int, error) {
	if err := ValidateName(image); err != nil {
		return 0, err
	}
	return h.passthrough(ctx, SystemctlArgv("status", image))
}

// Logs shows (or follows) the service's journal and returns journalctl's
// exit code.
func (h *Host) Logs(ctx context.Context, image string, follow bool) (int, error) {
	if err := ValidateName(image); err != nil {
		return 0, err
	}
	return h.passthrough(ctx, JournalctlArgv(image, follow))
}

// systemctl's exit status for a unit that is not loaded / not found.
const exitUnitNotLoaded = 5

func (h *Host) unitVerb(ctx context.Context, verb, image string) error {
	if err := ValidateName(image); err != nil {
		return err
	}
	argv := SystemctlArgv(verb, image)
	code, stderr, err := h.run(ctx, argv, io.Discard)
	if err != nil {
		return err
	}
	if code == exitUnitNotLoaded {
		return fmt.Errorf("%s: %s is not installed: run `ov pod install %s` first", engine.Display(argv), ServiceName(image), image)
	}
	if code != 0 {
		return h.systemctlError(argv, code, stderr)
	}
	return nil
}

func (h *Host) quadletDir() (string, error) {
	if h.QuadletDir != "" {
		return h.QuadletDir, nil
	}
	return QuadletDir()
}

// run runs argv with its stderr captured (for the error) and stdout to out.
func (h *Host) run(ctx context.Context, argv []string, out io.Writer) (int, string, error) {
	stderr := engine.NewTail()
	code, err := h.Runner.Run(ctx, argv, engine.Stdio{Stdout: out, Stderr: stderr})
	return code, stderr.String(), err
}

// check runs argv and turns a non-zero exit into an error.
func (h *Host) check(ctx context.Context, argv []string, out io.Writer) error {
	code, stderr, err := h.run(ctx, argv, out)
	if err != nil {
		return err
	}
	if code != 0 {
		return &engine.ExitError{Argv: argv, Code: code, Stderr: stderr}
	}
	return nil
}

// passthrough runs argv on the user's terminal and returns its exit code;
// only a missing user session becomes an error (with the fix).
func (h *Host) passthrough(ctx context.Context, argv []string) (int, error) {
	stderr := engine.NewTail()
	code, err := h.Runner.Run(ctx, argv, engine.Stdio{Stdout: h.Stdout, Stderr: engine.Tee(h.Stderr, stderr)})
	if err != nil {
		return code, err
	}
	if code != 0 && noBus(stderr.String()) {
		return code, h.sessionError(argv, stderr.String())
	}
	return code, nil
}

func (h *Host) systemctl(ctx context.Context, verb, image string) error {
	argv := SystemctlArgv(verb, image)
	code, stderr, err := h.run(ctx, argv, io.Discard)
	if err != nil {
		return err
	}
	if code != 0 {
		return h.systemctlError(argv, code, stderr)
	}
	return nil
}

func (h *Host) systemctlError(argv []string, code int, stderr string) error {
	if noBus(stderr) {
		return h.sessionError(argv, stderr)
	}
	return &engine.ExitError{Argv: argv, Code: code, Stderr: stderr}
}

// userSession fails early, before anything is copied or written, when
// `systemctl --user` cannot reach a user manager.
func (h *Host) userSession(ctx context.Context) error {
	return h.systemctl(ctx, "show-environment", "")
}

func noBus(stderr string) bool {
	for _, s := range []string{"Failed to connect to bus", "Failed to connect to user scope bus", "$DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR not defined"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

func (h *Host) sessionError(argv []string, stderr string) error {
	u := h.userName()
	return fmt.Errorf("%s: no systemd user session (%s): log in as %s directly (not through su or sudo), or run `loginctl enable-linger %s` and set XDG_RUNTIME_DIR=/run/user/$(id -u %s)",
		engine.Display(argv), firstLine(stderr), u, u, u)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func (h *Host) userName() string {
	if h.User != "" {
		return h.User
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// warnLinger warns (it is not fatal: the service runs while the user is
// logged in) when the user manager does not outlive the user's sessions.
func (h *Host) warnLinger(ctx context.Context, image string) {
	u := h.userName()
	var out bytes.Buffer
	code, _, err := h.run(ctx, LingerArgv(u), &out)
	if err == nil && code == 0 && strings.TrimSpace(out.String()) == "Linger=yes" {
		return
	}
	fmt.Fprintf(h.Stderr, "warning: lingering is off for user %s, so %s stops at logout and does not start at boot: run `loginctl enable-linger %s` to fix\n",
		u, ServiceName(image), u)
}

func (h *Host) active(ctx context.Context, image string) (bool, error) {
	argv := SystemctlArgv("is-active", image)
	code, stderr, err := h.run(ctx, argv, io.Discard)
	if err != nil {
		return false, err
	}
	if code != 0 && noBus(stderr) {
		return false, h.sessionError(argv, stderr)
	}
	return code == 0, nil
}

// podmanHas reports whether podman's store has ref.
func (h *Host) podmanHas(ctx context.Context, ref string) (bool, error) {
	argv := podman.ExistsArgv(ref)
	code, stderr, err := h.run(ctx, argv, io.Discard)
	switch {
	case err != nil:
		return false, err
	case code == 0:
		return true, nil
	case code == 1:
		return false, nil
	}
	return false, &engine.ExitError{Argv: argv, Code: code, Stderr: stderr}
}

// The two ends of the docker -> podman transfer.
var (
	docker = engine.Engine{Bin: engine.Docker}
	podman = engine.Engine{Bin: engine.Podman}
)

// transfer copies ref from docker's image store into podman's.
func (h *Host) transfer(ctx context.Context, ref string) error {
	fmt.Fprintf(h.Stderr, "copying %s from docker to podman\n", ref)
	if err := engine.Pipe(ctx, h.Runner, docker.SaveArgv(ref), podman.LoadArgv(), engine.Stdio{Stdout: h.Stderr}); err != nil {
		var mt *engine.MissingToolError
		if errors.As(err, &mt) && mt.Tool == engine.Docker {
			return fmt.Errorf("podman has no image %s and docker, to copy it from, is not installed: build the image, or `podman pull %s`", ref, ref)
		}
		return fmt.Errorf("copying %s from docker to podman: %w", ref, err)
	}
	has, err := h.podmanHas(ctx, ref)
	if err != nil {
		return err
	}
	if !has {
		return fmt.Errorf("copying %s from docker to podman: podman load succeeded but podman has no image %s", ref, ref)
	}
	return nil
}
