// Command ov builds composable container images from a library of layers.
//
// This file holds the command-line grammar (Kong) and exit-code handling;
// each command lives in its own file with its Run method.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"runtime/debug"
	"time"

	"github.com/alecthomas/kong"
	"github.com/sirupsen/logrus"

	"github.com/overthink/ov/internal/builddir"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// CLI is ov's command line.
//
// To add a command: write <command>.go with a <Command>Cmd struct and a
// `Run(g *Globals) error` method, and add ONE field line for it below, in the
// marked block. Use loadProject(g) to read the project, g.Stdout/g.Stderr for
// output, g.CalVer() for the invocation's version, and userErrorf for errors
// that are the user's (exit 1) rather than ov's (exit 2).
type CLI struct {
	Globals

	Validate ValidateCmd `cmd:"" help:"Check images.yml and every layer; print all problems as file:line: message."`
	Inspect  InspectCmd  `cmd:"" help:"Print an image's resolved configuration as JSON, or one field with --format."`
	List     ListCmd     `cmd:"" help:"List images, layers, build targets, services, routes or volumes."`
	New      NewCmd      `cmd:"" help:"Scaffold a new layer."`
	Version  VersionCmd  `cmd:"" help:"Print the CalVer version of this moment (YYYY.DDD.HHMM, UTC)."`

	// Commands added by other files go here, one line each, e.g.:
	//   Generate GenerateCmd `cmd:"" help:"..."` // generate.go
	//   Build    BuildCmd    `cmd:"" help:"..."` // build.go
	//   Merge    MergeCmd    `cmd:"" help:"..."` // merge.go
	//   Shell    ShellCmd    `cmd:"" help:"..."` // shell.go (and Start, Stop)
	//   Pod      PodCmd      `cmd:"" help:"..."` // pod.go
	Builder    BuilderCmd    `cmd:"" help:"Manage ov's own buildkitd: start, stop, status."`                                // builder.go
	Generate   GenerateCmd   `cmd:"" help:"Write .build/: Containerfiles and docker-bake.hcl for docker buildx bake."`      // generate.go
	Build      BuildCmd      `cmd:"" help:"Build images with BuildKit (LLB, no Containerfiles): push, load or write OCI."`  // build.go
	Verify     VerifyCmd     `cmd:"" help:"Rebuild an image with no cache and compare its digests with the last build's."`  // verify.go
	Shell      ShellCmd      `cmd:"" help:"Run bash (or -c CMD) in an image, workspace at /workspace, ports on 127.0.0.1."` // run.go
	Start      StartCmd      `cmd:"" help:"Start an image's supervisord detached as container ov-<image>."`                 // run.go
	Stop       StopCmd       `cmd:"" help:"Stop container ov-<image>."`                                                     // run.go
	Merge      MergeCmd      `cmd:"" help:"Merge small layers of a built image (docker or podman store)."`                  // merge.go
	Pod        PodCmd        `cmd:"" help:"Run an image as a podman quadlet systemd user service."`                         // pod.go
	Completion CompletionCmd `cmd:"" help:"Print shell completion code for bash, zsh or fish."`                             // completion.go
	Schema     SchemaCmd     `cmd:"" help:"Print the JSON Schema of images.yml or layer.yml, for editors."`                 // schema.go
	Graph      GraphCmd      `cmd:"" help:"Print the project (or one image's layer order) as a Mermaid or Graphviz graph."` // graph.go
}

// Globals are the flags every command sees, and the invocation's outputs and
// time. Kong passes *Globals to every Run method.
type Globals struct {
	Dir   string `short:"C" name:"dir" default:"." placeholder:"DIR" help:"Project directory, holding images.yml and layers/ (default: the current directory)."`
	Debug bool   `env:"OV_DEBUG" help:"Also print what the libraries ov uses (containerd, the BuildKit client) log, at debug level; without it their logs are dropped."`

	Stdout io.Writer `kong:"-"`
	Stderr io.Writer `kong:"-"`
	Now    time.Time `kong:"-"` // the invocation's time; versions derive from it once
}

// CalVer is the version of this invocation.
func (g *Globals) CalVer() string { return spec.CalVer(g.Now) }

// loadProject reads and validates the project in g.Dir. Its errors are
// spec.Errors (exit 1) or internal (exit 2).
func loadProject(g *Globals) (*spec.Project, error) { return spec.Load(g.Dir) }

// collectLess has the garbage collector run at 4x the live heap instead of
// 2x (GOGC=400), unless GOGC is set, in a command that reads the project,
// writes and exits: at 100 images ov generate allocates ~50 MiB and keeps
// ~10, and collecting every few MiB took a fifth of its CPU time (its
// peak RSS grows from 44 to 51 MiB). Long-running commands keep the default.
func collectLess() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

const description = `ov builds container images from a library of layers.

A project is a directory with images.yml (the images: base, platforms, tag,
layers, ...) and layers/<name>/ (one directory per layer: layer.yml plus
install files such as root.yml, pixi.toml, package.json, Cargo.toml,
user.yml). ov reads the project in the current directory, or in -C DIR.

inspect, list and version print to stdout; everything else reports on stderr.
Exit status: 0 success, 1 invalid project or usage, 2 internal error.`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, time.Now()))
}

// exitCode carries Kong's exit (after --help) out of the parser.
type exitCode int

// run executes one ov invocation and returns its exit status.
func run(args []string, stdout, stderr io.Writer, now time.Time) (code int) {
	cli := CLI{Globals: Globals{Stdout: stdout, Stderr: stderr, Now: now}}
	parser, err := kong.New(&cli,
		kong.Name("ov"),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(exitCode(c)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Bind(&cli.Globals),
	)
	if err != nil {
		fmt.Fprintf(stderr, "ov: internal error: %v\n", err)
		return 2
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	if completeArgs(parser) {
		return 0
	}
	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "ov: %v (see ov --help)\n", err)
		return 1
	}
	libraryLogs(cli.Debug, stderr)
	return report(stderr, ctx.Run())
}

// libraryLogs sends what libraries log (containerd and the BuildKit client
// through logrus, others through the standard log package) to stderr with
// --debug and nowhere otherwise: a user sees ov's own messages, not, say,
// containerd's "failed check for fsverity support" on every OCI export.
func libraryLogs(debug bool, stderr io.Writer) {
	out, level := io.Discard, logrus.InfoLevel
	if debug {
		out, level = stderr, logrus.DebugLevel
	}
	logrus.SetOutput(out)
	logrus.SetLevel(level)
	log.SetOutput(out)
}

// report prints a command's error and returns the exit status for it.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var verrs spec.Errors
	var verr *spec.Error
	var uerr *userError
	var status exitStatus
	var link *builddir.LinkError
	switch {
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &uerr), errors.As(err, &link):
		// Before spec errors: a user error wrapping one (a failed plan)
		// prints as ov's message.
		fmt.Fprintf(stderr, "ov: %v\n", err)
		return 1
	case errors.As(err, &verrs), errors.As(err, &verr):
		fmt.Fprintln(stderr, err)
		return 1
	default:
		fmt.Fprintf(stderr, "ov: internal error: %v\n", err)
		return 2
	}
}

// userError marks an error as the user's (bad argument, unknown image):
// exit 1 instead of 2.
type userError struct{ err error }

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

// planError is a failed plan as ov reports it: a mistake in the project or
// the flags (a spec error) and a base whose user cannot be resolved (the
// registry, the reference, --offline-user) are the user's (exit 1);
// anything else, such as a failure to read a project file, is ov's (exit
// 2), and a cancellation stays one.
func planError(err error) error {
	var verr *spec.Error
	var verrs spec.Errors
	var ferr *spec.FileError
	var lerr *plan.LookupError
	if errors.Is(err, context.Canceled) ||
		!errors.As(err, &verr) && !errors.As(err, &verrs) && !errors.As(err, &ferr) && !errors.As(err, &lerr) {
		return err
	}
	return &userError{err: err}
}

// userErrorf returns a user error (exit 1).
func userErrorf(format string, args ...any) error {
	return &userError{err: fmt.Errorf(format, args...)}
}
