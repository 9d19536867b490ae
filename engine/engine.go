// Package engine is how ov drives the container engines (docker, podman):
// pure argv builders for save, load, tag, image exists, image metadata
// (layer count, history) and run; a Runner that runs an argv (ExecRunner, or
// a fake in tests); and image transfer between an engine's store and
// go-containerregistry images (image.go). export, merge and pod use it;
// nothing else runs an engine.
package engine

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// The engines ov runs containers with. Both take the same run flags.
const (
	Docker = "docker"
	Podman = "podman"
)

// Detect picks the engine to run containers with when neither a flag nor
// the config names one: docker if it is installed, else podman.
func Detect(lookPath func(string) (string, error)) (string, error) {
	for _, e := range []string{Docker, Podman} {
		if _, err := lookPath(e); err == nil {
			return e, nil
		}
	}
	return "", fmt.Errorf("neither docker nor podman is installed: install one of them to run images")
}

// Check validates an engine named by a flag or config.
func Check(name string) error {
	if name != Docker && name != Podman {
		return fmt.Errorf("engine %q: want %q or %q", name, Docker, Podman)
	}
	return nil
}

// Engine is one engine binary with its global flags.
type Engine struct {
	Bin     string   // "docker" (default) or "podman", or a path to either
	Flags   []string // global flags before the command (--context ctx, --root dir)
	TempDir string   // where a saved archive goes ("" = os.TempDir())
	// Stderr gets the engine's own messages ("Loaded image: ..."); nil
	// discards them.
	Stderr io.Writer
	Runner Runner // nil = ExecRunner{}
}

// Name is the binary.
func (e Engine) Name() string {
	if e.Bin == "" {
		return Docker
	}
	return e.Bin
}

func (e Engine) podman() bool { return strings.Contains(filepath.Base(e.Name()), Podman) }

// Argv is the engine's argv for args: the binary, Flags, args.
func (e Engine) Argv(args ...string) []string {
	return append(append([]string{e.Name()}, e.Flags...), args...)
}

// SaveArgv writes ref as a docker-archive to stdout.
func (e Engine) SaveArgv(ref string) []string {
	if e.podman() {
		return e.Argv("save", "--format", "docker-archive", ref)
	}
	return e.Argv("save", ref)
}

// LoadArgv loads a docker-archive (tags included) from stdin.
func (e Engine) LoadArgv() []string { return e.Argv("load") }

// TagArgv gives ref the name tag.
func (e Engine) TagArgv(ref, tag string) []string { return e.Argv("tag", ref, tag) }

// ExistsArgv exits 0 when the store has ref, 1 when it does not (podman's
// `image exists`; docker's `image inspect` exits 1 too).
func (e Engine) ExistsArgv(ref string) []string {
	if e.podman() {
		return e.Argv("image", "exists", ref)
	}
	return e.Argv("image", "inspect", "--format", "{{.Id}}", ref)
}

// IDArgv prints ref's image ID (docker: sha256:<hex>; podman: <hex>),
// exiting non-zero when the store has no ref.
func (e Engine) IDArgv(ref string) []string {
	return e.Argv("image", "inspect", "--format", "{{.Id}}", ref)
}

// RunArgv is `run` with args (flags, image, command).
func (e Engine) RunArgv(args ...string) []string { return e.Argv(append([]string{"run"}, args...)...) }

func (e Engine) runner() Runner {
	if e.Runner == nil {
		return ExecRunner{}
	}
	return e.Runner
}

// LayersArgv prints ref's image ID and its number of layers, on one line.
func (e Engine) LayersArgv(ref string) []string {
	return e.Argv("image", "inspect", "--format", "{{.Id}} {{len .RootFS.Layers}}", ref)
}

// HistoryArgv prints ref's config history. podman prints it as the config
// has it (JSON); docker has no such field, so it prints one `docker
// history` row a line, newest first: the layer's uncompressed size in bytes
// (0 for an empty-layer entry) and its created_by as a JSON string.
func (e Engine) HistoryArgv(ref string) []string {
	if e.podman() {
		return e.Argv("image", "inspect", "--format", "{{json .History}}", ref)
	}
	return e.Argv("history", "--no-trunc", "--human=false", "--format", "{{.Size}} {{json .CreatedBy}}", ref)
}
