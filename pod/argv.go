package pod

import (
	"fmt"
	"os"
	"path/filepath"
)

// Engines ov can run containers with. Both take the same run flags.
const (
	Docker = "docker"
	Podman = "podman"
)

// supervisordCmd is what `ov start` and the quadlet run in the container.
var supervisordCmd = []string{"supervisord", "-n", "-c", "/etc/supervisord.conf"}

// DetectEngine picks the engine to run containers with when neither a flag
// nor the config names one: docker if it is installed, else podman.
func DetectEngine(lookPath func(string) (string, error)) (string, error) {
	for _, e := range []string{Docker, Podman} {
		if _, err := lookPath(e); err == nil {
			return e, nil
		}
	}
	return "", fmt.Errorf("neither docker nor podman is installed: install one of them to run images")
}

// CheckEngine validates an engine named by a flag or config.
func CheckEngine(engine string) error {
	if engine != Docker && engine != Podman {
		return fmt.Errorf("engine %q: want %q or %q", engine, Docker, Podman)
	}
	return nil
}

// Workspace resolves the host directory mounted at /workspace: dir made
// absolute, or the current directory when dir is empty. It must exist:
// docker would otherwise create it, owned by root.
func Workspace(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("workspace %q: %w", dir, err)
	}
	if err := checkWorkspace(abs); err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("workspace: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("workspace %q is not a directory", abs)
	}
	return abs, nil
}

// StdinKind says what the caller's standard input is; it decides -i/-t.
type StdinKind int

const (
	StdinNone     StdinKind = iota // /dev/null, closed, or nothing useful (CI)
	StdinData                      // a pipe or a file: forward it
	StdinTerminal                  // an interactive terminal
)

// ShellOptions are the per-call inputs of `ov shell`.
type ShellOptions struct {
	Workspace string    // absolute host directory mounted at /workspace
	Command   string    // run `bash -c Command` instead of an interactive shell
	Stdin     StdinKind // what stdin is (see DetectStdin)
}

// ShellArgv is `ov shell`: bash in the image as the image's user, the
// workspace at /workspace, and the image's ports on 127.0.0.1.
//
// Interactive (no Command) uses -it on a terminal and -i otherwise. With a
// Command there is never a TTY (output stays byte-exact for scripts) and
// stdin is attached only when it carries something: `-c` must work in CI,
// where stdin is absent.
func ShellArgv(engine string, img Image, o ShellOptions) ([]string, error) {
	if err := runChecks(engine, img, o.Workspace); err != nil {
		return nil, err
	}
	argv := []string{engine, "run", "--rm"}
	switch {
	case o.Command == "" && o.Stdin == StdinTerminal:
		argv = append(argv, "-it")
	case o.Command == "" || o.Stdin != StdinNone:
		argv = append(argv, "-i")
	}
	argv = append(argv, mountArgs(engine, img, o.Workspace)...)
	argv = append(argv, "--user", fmt.Sprintf("%d:%d", img.UID, img.GID))
	argv = append(argv, publishArgs(img)...)
	argv = append(argv, "--entrypoint", "bash", img.Ref)
	if o.Command != "" {
		argv = append(argv, "-c", o.Command)
	}
	return argv, nil
}

// StartArgv is `ov start`: supervisord, detached, as the image's own USER
// (the generated images end with `USER <uid>`; services that need root say
// so in their supervisord fragment), removed when stopped.
func StartArgv(engine string, img Image, workspace string) ([]string, error) {
	if err := runChecks(engine, img, workspace); err != nil {
		return nil, err
	}
	argv := []string{engine, "run", "-d", "--rm", "--name", ContainerName(img.Name)}
	argv = append(argv, mountArgs(engine, img, workspace)...)
	argv = append(argv, publishArgs(img)...)
	argv = append(argv, img.Ref)
	return append(argv, supervisordCmd...), nil
}

// StopArgv is `ov stop`.
func StopArgv(engine, image string) ([]string, error) {
	if err := CheckEngine(engine); err != nil {
		return nil, err
	}
	if err := ValidateName(image); err != nil {
		return nil, err
	}
	return []string{engine, "stop", ContainerName(image)}, nil
}

// SaveArgv and LoadArgv are the two ends of the docker -> podman transfer.
func SaveArgv(ref string) []string { return []string{Docker, "save", ref} }
func LoadArgv() []string           { return []string{Podman, "load"} }

// ImageExistsArgv exits 0 when podman has ref, 1 when it does not.
func ImageExistsArgv(ref string) []string { return []string{Podman, "image", "exists", ref} }

// SystemctlArgv is `systemctl --user <verb> [ov-<image>.service]`; the
// unit is left out for verbs that take none (daemon-reload).
func SystemctlArgv(verb, image string) []string {
	argv := []string{"systemctl", "--user", verb}
	if image != "" {
		argv = append(argv, ServiceName(image))
	}
	return argv
}

// JournalctlArgv shows (or follows) the service's log.
func JournalctlArgv(image string, follow bool) []string {
	argv := []string{"journalctl", "--user", "-u", ServiceName(image)}
	if follow {
		argv = append(argv, "-f")
	}
	return argv
}

// LingerArgv prints "Linger=yes" or "Linger=no" for user.
func LingerArgv(user string) []string {
	return []string{"loginctl", "show-user", user, "-p", "Linger"}
}

func runChecks(engine string, img Image, workspace string) error {
	if err := CheckEngine(engine); err != nil {
		return err
	}
	if err := img.Validate(); err != nil {
		return err
	}
	return checkWorkspace(workspace)
}

// mountArgs are the workspace, the image's volumes and its GPUs; img was
// validated.
func mountArgs(engine string, img Image, workspace string) []string {
	argv := []string{"-v", workspace + ":/workspace", "-w", "/workspace"}
	for _, v := range img.Volumes {
		argv = append(argv, "-v", volumeSpec(img.Name, v))
	}
	if img.GPU {
		argv = append(argv, gpuArgs(engine)...)
	}
	return argv
}

// gpuArgs pass every NVIDIA GPU through: docker's --gpus (the NVIDIA
// container toolkit), podman's CDI device.
func gpuArgs(engine string) []string {
	if engine == Podman {
		return []string{"--device", CDIDevice}
	}
	return []string{"--gpus", "all"}
}

// publishArgs assumes img was validated.
func publishArgs(img Image) []string {
	var argv []string
	for _, p := range img.Ports {
		spec, _ := PublishSpec(p)
		argv = append(argv, "-p", spec)
	}
	return argv
}
