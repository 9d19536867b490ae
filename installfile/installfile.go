// Package installfile is the table of install files a layer may carry
// (root.yml, a pixi manifest, package.json, Cargo.toml, user.yml): how each
// kind is found and checked, which spec reads when it loads a layer, and the
// step that installs it, which plan reads. A new kind is one entry in Kinds.
package installfile

import (
	"fmt"
	"io/fs"
	"slices"
)

// Cache names the cache a kind's step mounts.
type Cache int

const (
	NoCache      Cache = iota
	PackageCache       // the image's package manager's (apt or dnf)
	NpmCache           // the user's npm cache
	CargoCache         // the user's cargo registry
)

// Kind is one kind of install file.
type Kind struct {
	Name  string   // as messages name it: the file name, "pixi" for the pixi manifests
	Files []string // the file names that make it, in priority order; a layer has at most one
	Dir   string   // a directory required next to the file ("src" for Cargo.toml), or ""
	// Taskfile says the file is a Taskfile whose install task the step runs
	// (spec checks that it has one).
	Taskfile bool
	Root     bool // the step runs as root; otherwise as the image's user
	Cache    Cache
	// Stage says the file is installed in a build stage of its own (pixi),
	// whose result plan copies into the image; Shell runs there, after
	// Setup, when that gives a command (tools the install needs in the
	// stage only).
	Stage bool
	Setup func(f File) string
	// Read fills in what the step needs to know about the file, from the
	// layer's directory; nil reads nothing. Its errors are the user's.
	Read func(layer fs.FS, f *File) error
	// Shell is the step's command, run with the layer's files at mount (a
	// Stage kind: in the directory holding them).
	Shell func(mount string, f File) string
}

// File is a layer's install file of one kind.
type File struct {
	Kind *Kind
	Name string // one of Kind.Files
	Lock string // its lock file next to it ("pixi.lock"), or ""
	// Deps are the global installs of a package.json that only lists
	// tools: "name@range" of each dependency. Empty installs the manifest
	// itself as a package.
	Deps []string
	// Sources says a pixi manifest builds packages from source (PyPI or
	// git), which needs a compiler and git where it is installed.
	Sources bool
}

// Kinds lists every kind in processing order: a layer's steps run in this
// order, after its system packages.
var Kinds = []*Kind{
	{Name: "root.yml", Files: []string{"root.yml"}, Taskfile: true, Root: true, Cache: PackageCache,
		Shell: func(mount string, f File) string { return "cd " + mount + " && task -t root.yml install" }},
	{Name: "pixi", Files: []string{"pixi.toml", "pyproject.toml", "environment.yml"}, Stage: true,
		Read: readPixi, Setup: pixiSetup, Shell: pixiShell},
	{Name: "package.json", Files: []string{"package.json"}, Cache: NpmCache,
		Read: readPackageJSON, Shell: npmShell},
	// cargo writes target/ next to the sources unless told otherwise, and
	// the layer's files are read-only.
	{Name: "Cargo.toml", Files: []string{"Cargo.toml"}, Dir: "src", Cache: CargoCache,
		Shell: func(mount string, f File) string {
			return `tmp="$(mktemp -d)" && CARGO_TARGET_DIR="$tmp" cargo install --path ` + mount + ` && rm -rf "$tmp"`
		}},
	{Name: "user.yml", Files: []string{"user.yml"}, Taskfile: true, Cache: NpmCache,
		Shell: func(mount string, f File) string { return "cd " + mount + " && task -t user.yml install" }},
}

// Names lists every install file name, in Kinds order.
func Names() []string {
	var out []string
	for _, k := range Kinds {
		out = append(out, k.Files...)
	}
	return out
}

// ByName returns the kind a file name makes, or nil.
func ByName(name string) *Kind {
	for _, k := range Kinds {
		if slices.Contains(k.Files, name) {
			return k
		}
	}
	return nil
}

// Files returns the detected files of the given names without reading them:
// a shorthand for tests and synthetic layers. It panics on a name no kind
// has.
func Files(names ...string) []File {
	out := make([]File, 0, len(names))
	for _, n := range names {
		k := ByName(n)
		if k == nil {
			panic(fmt.Sprintf("installfile: no kind for %q", n))
		}
		out = append(out, File{Kind: k, Name: n})
	}
	return out
}
