package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"

	"github.com/overthink/ov/builder"
)

// BuilderFlags choose the buildkitd to build with. Commands that build embed
// it (a BuilderFlags field tagged embed:"") and call its Connect.
type BuilderFlags struct {
	Builder         string `name:"builder" env:"BUILDKIT_HOST" placeholder:"ADDR" help:"buildkitd address: unix://, tcp://, docker-container://, podman-container://, nerdctl-container://, kube-pod://, ssh:// (default: the system socket if a daemon answers there, else ov's own managed buildkitd)."`
	TLSCACert       string `name:"tlscacert" env:"BUILDKIT_TLSCACERT" type:"path" placeholder:"FILE" help:"CA certificate to verify a tcp:// builder with."`
	TLSCert         string `name:"tlscert" env:"BUILDKIT_TLSCERT" type:"path" placeholder:"FILE" help:"Client certificate for a tcp:// builder."`
	TLSKey          string `name:"tlskey" env:"BUILDKIT_TLSKEY" type:"path" placeholder:"FILE" help:"Client key for a tcp:// builder."`
	TLSServerName   string `name:"tlsservername" env:"BUILDKIT_TLSSERVERNAME" placeholder:"NAME" help:"Server name to verify the builder's certificate against (default: the address's host)."`
	BuildkitdConfig string `name:"buildkitd-config" env:"OV_BUILDKITD_CONFIG" type:"path" placeholder:"FILE" help:"buildkitd.toml for the managed builder (default: hack/buildkitd.toml, else <user config dir>/ov/buildkitd.toml)."`
}

// Options turns the flags into builder options for the project in g.Dir.
func (f *BuilderFlags) Options(g *Globals) builder.Options {
	dir, err := filepath.Abs(g.Dir)
	if err != nil {
		dir = g.Dir
	}
	return builder.Options{
		Addr:          f.Builder,
		TLSCACert:     f.TLSCACert,
		TLSCert:       f.TLSCert,
		TLSKey:        f.TLSKey,
		TLSServerName: f.TLSServerName,
		ConfigFile:    f.BuildkitdConfig,
		ProjectDir:    dir,
	}
}

// Connect returns a client on the chosen builder, starting the managed one
// if that is the choice. Failures are the user's to fix (exit 1): an
// unreachable address, TLS, permissions, a missing buildkitd.
func (f *BuilderFlags) Connect(ctx context.Context, g *Globals) (*client.Client, error) {
	c, _, err := f.connectAddr(ctx, g)
	return c, err
}

// connectAddr is Connect that also says which builder it reached: the
// build record is only good for that builder's cache.
func (f *BuilderFlags) connectAddr(ctx context.Context, g *Globals) (*client.Client, string, error) {
	c, addr, err := builder.ConnectAddr(ctx, f.Options(g))
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", &userError{err: err}
	}
	return c, addr, nil
}

// BuilderCmd manages ov's own buildkitd.
type BuilderCmd struct {
	BuilderFlags `embed:""`

	Start  BuilderStartCmd  `cmd:"" help:"Start the managed buildkitd (no-op when it is running)."`
	Stop   BuilderStopCmd   `cmd:"" help:"Stop the managed buildkitd; its build cache stays."`
	Status BuilderStatusCmd `cmd:"" help:"Print the builder ov build would use: address, pid, version, workers and platforms."`
}

// BuilderStartCmd is `ov builder start`.
type BuilderStartCmd struct{}

// Run starts (or finds) the managed builder.
func (BuilderStartCmd) Run(g *Globals, b *BuilderCmd) error {
	ctx, stop := interruptible()
	defer stop()
	o := b.Options(g)
	before, _ := builder.Status(ctx, o)
	st, err := builder.Start(ctx, o)
	if err != nil {
		return builderError(ctx, err)
	}
	verb := "started"
	if before.Running && before.PID == st.PID {
		verb = "already running"
	}
	fmt.Fprintf(g.Stderr, "managed buildkitd %s: pid %d, %s (%s)\n", verb, st.PID, st.Addr, configName(st.Config))
	return nil
}

// BuilderStopCmd is `ov builder stop`.
type BuilderStopCmd struct{}

// Run stops the managed builder.
func (BuilderStopCmd) Run(g *Globals, b *BuilderCmd) error {
	ctx, stop := interruptible()
	defer stop()
	st, _ := builder.Status(ctx, b.Options(g))
	switch err := builder.Stop(ctx, b.Options(g)); {
	case errors.Is(err, builder.ErrNotRunning):
		fmt.Fprintln(g.Stderr, "managed buildkitd is not running")
	case err != nil:
		return builderError(ctx, err)
	default:
		fmt.Fprintf(g.Stderr, "managed buildkitd stopped (pid %d); its cache stays in %s\n", st.PID, st.Dir)
	}
	return nil
}

// BuilderStatusCmd is `ov builder status`.
type BuilderStatusCmd struct{}

// Run prints the builder that `ov build` would use, without starting one.
func (BuilderStatusCmd) Run(g *Globals, b *BuilderCmd) error {
	ctx, stop := interruptible()
	defer stop()
	o := b.Options(g)
	st, err := builder.Status(ctx, o)
	if err != nil {
		return builderError(ctx, err)
	}
	c, addr, err := builder.Lookup(ctx, o)
	w := tabwriter.NewWriter(g.Stdout, 0, 8, 2, ' ', 0)
	defer w.Flush()
	managed := addr == st.Addr
	switch {
	case errors.Is(err, builder.ErrNotRunning):
		fmt.Fprintf(w, "builder\tmanaged, not running (`ov build` or `ov builder start` starts it)\n")
	case err != nil:
		w.Flush()
		return builderError(ctx, err)
	default:
		defer c.Close()
		fmt.Fprintf(w, "builder\t%s\n", addr)
		if managed {
			fmt.Fprintf(w, "pid\t%d\n", st.PID)
		}
	}
	if managed {
		fmt.Fprintf(w, "state\t%s\n", st.Dir)
		fmt.Fprintf(w, "config\t%s\n", configName(st.Config))
		fmt.Fprintf(w, "log\t%s\n", st.Log)
	}
	if c == nil {
		return nil
	}

	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("builder %s: %w", addr, err)
	}
	v := info.BuildkitVersion
	fmt.Fprintf(w, "version\t%s %s %s\n", v.Package, v.Version, v.Revision)
	workers, err := c.ListWorkers(ctx)
	if err != nil {
		return fmt.Errorf("builder %s: %w", addr, err)
	}
	for _, wk := range workers {
		ps := make([]string, len(wk.Platforms))
		for i, p := range wk.Platforms {
			ps[i] = platforms.Format(p)
		}
		fmt.Fprintf(w, "worker\t%s (%s, %s)\n", wk.ID,
			wk.Labels["org.mobyproject.buildkit.worker.executor"],
			wk.Labels["org.mobyproject.buildkit.worker.snapshotter"])
		fmt.Fprintf(w, "platforms\t%s\n", strings.Join(ps, " "))
	}
	return nil
}

func configName(path string) string {
	if path == "" {
		return "buildkitd defaults"
	}
	return path
}

// builderError marks builder failures as the user's (exit 1) unless the
// user interrupted.
func builderError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &userError{err: err}
}

// interruptible is a context that Ctrl-C or SIGTERM cancels.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
