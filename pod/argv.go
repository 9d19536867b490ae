package pod

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/overthink/ov/engine"
)

// supervisordCmd is what `ov start` and the quadlet run in the container.
var supervisordCmd = []string{"supervisord", "-n", "-c", "/etc/supervisord.conf"}

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
func ShellArgv(eng string, img Image, o ShellOptions) ([]string, error) {
	if err := runChecks(eng, img, o.Workspace); err != nil {
		return nil, err
	}
	argv := engine.Engine{Bin: eng}.RunArgv("--rm")
	switch {
	case o.Command == "" && o.Stdin == StdinTerminal:
		argv = append(argv, "-it")
	case o.Command == "" || o.Stdin != StdinNone:
		argv = append(argv, "-i")
	}
	argv = append(argv, mountArgs(eng, img, o.Workspace)...)
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
func StartArgv(eng string, img Image, workspace string) ([]string, error) {
	if err := runChecks(eng, img, workspace); err != nil {
		return nil, err
	}
	argv := engine.Engine{Bin: eng}.RunArgv("-d", "--rm", "--name", ContainerName(img.Name))
	argv = append(argv, mountArgs(eng, img, workspace)...)
	argv = append(argv, publishArgs(img)...)
	argv = append(argv, img.Ref)
	return append(argv, supervisordCmd...), nil
}

// StopArgv is `ov stop`.
func StopArgv(eng, image string) ([]string, error) {
	if err := engine.Check(eng); err != nil {
		return nil, err
	}
	if err := ValidateName(image); err != nil {
		return nil, err
	}
	return engine.Engine{Bin: eng}.Argv("stop", ContainerName(image)), nil
}

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

func runChecks(eng string, img Image, workspace string) error {
	if err := engine.Check(eng); err != nil {
		return err
	}
	if err := img.Validate(); err != nil {
		return err
	}
	return checkWorkspace(workspace)
}

// mountArgs are the workspace, the image's volumes and its GPUs; img was
// validated.
func mountArgs(eng string, img Image, workspace string) []string {
	argv := []string{"-v", workspace + ":/workspace", "-w", "/workspace"}
	for _, v := range img.Volumes {
		argv = append(argv, "-v", volumeSpec(img.Name, v))
	}
	if img.GPU {
		argv = append(argv, gpuArgs(eng)...)
	}
	return argv
}

// gpuArgs pass every NVIDIA GPU through: docker's --gpus (the NVIDIA
// container toolkit), podman's CDI device.
func gpuArgs(eng string) []string {
	if eng == engine.Podman {
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
