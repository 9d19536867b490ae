// Command ovbench runs issue 7's benchmarks: ov build against ov generate +
// docker buildx bake, alternating, in the same run, on the same buildkitd
// (cold, no-op to a registry and to OCI layouts, incremental, merge), the
// no-op of a synthetic 100-image project (noop-scale), and ov
// validate/generate on it (scale). It prints the results and writes them as a
// markdown table (BENCHMARKS.md). Timings are measurements, not checks.
//
//	go run ./bench/cmd/ovbench -runs 3 -out BENCHMARKS.md
//	go run ./bench/cmd/ovbench -scenarios scale   # no build environment
//
// Everything but "scale" needs internal/testenv's environment (root, the
// tools `go tool task setup` installs).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/overthink/ov/bench"
	"github.com/overthink/ov/internal/testenv"
)

// Scenarios, in the order they run.
var allScenarios = []string{"cold", "noop", "incremental", "merge", "noop-scale", "scale"}

func main() {
	runs := flag.Int("runs", 3, "timed runs per scenario and contender (a cold run is a full build: minutes)")
	out := flag.String("out", "", "write the markdown report here (e.g. BENCHMARKS.md)")
	scenarios := flag.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	keep := flag.Bool("keep", false, "keep the scratch directory")
	flag.Parse()

	want, err := parseScenarios(*scenarios)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ovbench: %v\n", err)
		os.Exit(2)
	}
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "ovbench: -runs must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, want, *runs, *keep)
	if rep != nil {
		md := rep.Markdown()
		os.Stdout.Write(md)
		if *out != "" {
			if werr := os.WriteFile(*out, md, 0o644); werr != nil {
				fmt.Fprintf(os.Stderr, "ovbench: %v\n", werr)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "ovbench: wrote %s\n", *out)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ovbench: %v\n", err)
		os.Exit(1)
	}
}

func parseScenarios(s string) (map[string]bool, error) {
	want := map[string]bool{}
	for _, sc := range strings.Split(s, ",") {
		sc = strings.TrimSpace(sc)
		if !slices.Contains(allScenarios, sc) {
			return nil, fmt.Errorf("unknown scenario %q (want %s)", sc, strings.Join(allScenarios, ", "))
		}
		want[sc] = true
	}
	return want, nil
}

// run runs the wanted scenarios. The report it returns holds whatever was
// measured, also when it fails part-way.
func run(ctx context.Context, want map[string]bool, runs int, keep bool) (*bench.Report, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "ovbench-")
	if err != nil {
		return nil, err
	}
	if keep {
		fmt.Fprintf(os.Stderr, "ovbench: scratch directory %s (command output in logs/)\n", work)
	} else {
		defer os.RemoveAll(work)
	}

	cmd := "go tool task bench"
	if runs != 3 {
		cmd = fmt.Sprintf("go tool task bench RUNS=%d", runs)
	}
	if len(want) == 1 && want["scale"] {
		cmd = strings.Replace(cmd, "task bench", "task bench:scale", 1)
	}
	rep := &bench.Report{Machine: bench.ThisMachine(), Command: cmd, Runs: runs}
	defer func() {
		rep.Machine.LoadEnd = bench.LoadAvg()
		if busy(rep.Machine.LoadStart, rep.Machine.CPUs) || busy(rep.Machine.LoadEnd, rep.Machine.CPUs) {
			rep.Notes = append(rep.Notes, "The machine was busy with other work (load average above its core count): "+
				"wall times are inflated; the ratios less so, since the contenders alternate.")
		}
	}()

	logf("building ov")
	bin, err := bench.BuildOV(ctx, root, work)
	if err != nil {
		return rep, err
	}

	if want["cold"] || want["noop"] || want["incremental"] || want["merge"] || want["noop-scale"] {
		if err := buildScenarios(ctx, rep, want, root, work, bin, runs); err != nil {
			return rep, err
		}
	}
	if want["scale"] {
		logf("generate at scale: %d images, %d layers", bench.Issue7.Images, bench.Issue7.Layers)
		s, err := bench.MeasureScale(ctx, bin, filepath.Join(work, "scale"), bench.Issue7, runs)
		if err != nil {
			return rep, fmt.Errorf("generate at scale: %w", err)
		}
		rep.Scale = s
	}
	return rep, nil
}

// buildScenarios starts the build environment and runs the contenders.
func buildScenarios(ctx context.Context, rep *bench.Report, want map[string]bool, root, work, bin string, runs int) error {
	logf("starting the build environment (first start builds the test bases: minutes)")
	ectx, cancel := context.WithTimeout(ctx, testenv.StartTimeout)
	env, err := testenv.Start(ectx)
	cancel()
	if err != nil {
		return err
	}
	defer env.Close()

	if want["cold"] || want["noop"] || want["incremental"] || want["merge"] {
		f, err := newFamily(ctx, env, root, work, bin)
		if err != nil {
			return err
		}
		defer f.close()
		rep.Notes = append(rep.Notes, f.notes...)
		if err := f.measure(ctx, rep, want, runs); err != nil {
			return err
		}
	}
	if want["noop-scale"] {
		logf("no-op at scale: %d images, %d layers", bench.Issue7.Images, bench.Issue7.Layers)
		bc, err := env.NewClient(ctx)
		if err != nil {
			return err
		}
		defer bc.Close()
		if rep.NoopScale, err = bench.MeasureNoopScale(ctx, bc, work, env.Registry, bench.Issue7, runs); err != nil {
			return fmt.Errorf("no-op at scale: %w", err)
		}
	}
	return nil
}

// repoRoot walks up to the module holding bench/.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "bench", "synth.go")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("run ovbench inside the ov repository")
		}
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s ovbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// busy reports whether a /proc/loadavg 1-minute figure exceeds the cores.
func busy(load string, cpus int) bool { return bench.Load1(load) > float64(cpus) }
