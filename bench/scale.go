package bench

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/generate"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// Validate is what `ov validate` does: load and check the project.
func Validate(dir string) (*spec.Project, error) {
	return spec.Load(dir)
}

// Generate is what `ov generate --offline-user` does, writing .build/ under
// out instead of the project: load, plan every enabled image with the
// offline user lookup, write.
func Generate(dir, out string) error {
	p, err := spec.Load(dir)
	if err != nil {
		return err
	}
	plans, err := plan.Build(p, nil, plan.Options{CalVer: "2026.1.0", Users: baseuser.Offline})
	if err != nil {
		return err
	}
	return generate.Write(out, plans, p)
}

// BuildOV builds cmd/ov from the module at root into dir and returns the
// binary's path.
func BuildOV(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "ov")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ov")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ov: %v\n%s", err, out)
	}
	return bin, nil
}

// Timing is one measured run: wall-clock time and the CPU time (user +
// system) it used. On a busy machine wall time grows with the load; CPU
// time much less.
type Timing struct {
	Wall, CPU time.Duration
}

// Run runs bin with args in dir and times it, failing with its output when
// it exits non-zero.
func Run(ctx context.Context, dir string, env []string, bin string, args ...string) (Timing, error) {
	return RunLog(ctx, "", dir, env, bin, args...)
}

// RunLog is Run that also appends the command line and its output to the
// file log (none when "").
func RunLog(ctx context.Context, log, dir string, env []string, bin string, args ...string) (Timing, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t := Timing{Wall: time.Since(start)}
	if cmd.ProcessState != nil {
		t.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if log != "" {
		if werr := appendLog(log, fmt.Sprintf("$ %s %s\n# %s wall, %v\n", filepath.Base(bin), strings.Join(args, " "), t.Wall, err), out.Bytes()); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return t, fmt.Errorf("%s %v: %v\n%s", filepath.Base(bin), args, err, lastLines(out.Bytes(), 40))
	}
	return t, nil
}

func appendLog(file, head string, out []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append([]byte(head), out...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ProcessCPU is the CPU time (user + system) this process has used so far.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lastLines keeps the tail of a command's output for error messages.
func lastLines(b []byte, n int) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, nil)
}

// Median returns the median of ds (the mean of the middle two for an even
// count); 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchValidate is BenchmarkValidate: spec.Load of the project in dir.
// Like BenchGenerateUnchanged and BenchGenerateFresh it reports
// allocations and cpu-ns/op, and MeasureScale runs it for BENCHMARKS.md:
// `go tool task bench:go` measures what the table reports.
func BenchValidate(dir string) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := Validate(dir); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchGenerateUnchanged is BenchmarkGenerate/unchanged: Generate of the
// project in dir into out again and again, after a first one (every
// generate after the first).
func BenchGenerateUnchanged(dir, out string) func(*testing.B) {
	return func(b *testing.B) {
		if err := Generate(dir, out); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if err := Generate(dir, out); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchGenerateFresh is BenchmarkGenerate/fresh: each Generate writes
// into a new directory under work (the first generate).
func BenchGenerateFresh(dir, work string) func(*testing.B) {
	n := 0
	return func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			b.StopTimer()
			n++
			out := filepath.Join(work, fmt.Sprintf("fresh-%d", n))
			b.StartTimer()
			if err := Generate(dir, out); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// reportCPU adds cpu-ns/op, the process CPU time per op: on a loaded
// machine it moves far less than ns/op. It includes the timer-stopped setup
// of "fresh", which is small.
func reportCPU(b *testing.B) func() {
	start := ProcessCPU()
	return func() {
		b.ReportMetric(float64(ProcessCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// MeasureScale runs "generate at scale" on a WriteProject project of s:
// the in-process benchmarks (testing.Benchmark) and runs of the ov binary
// bin (validate; generate without and with an existing .build/), each run
// times. work is a scratch directory.
func MeasureScale(ctx context.Context, bin, work string, s Scale, runs int) (*ScaleResult, error) {
	dir := filepath.Join(work, "project")
	if err := WriteProject(dir, s); err != nil {
		return nil, err
	}
	res := &ScaleResult{Scale: s}
	// A failing benchmark (b.Fatal) reports nothing: fail here first.
	out := filepath.Join(work, "out")
	if err := Generate(dir, out); err != nil {
		return nil, err
	}
	for _, m := range []struct {
		name string
		f    func(*testing.B)
		into *Op
	}{
		{"BenchmarkValidate", BenchValidate(dir), &res.Validate},
		{"BenchmarkGenerate/unchanged", BenchGenerateUnchanged(dir, out), &res.GenerateUnchanged},
		{"BenchmarkGenerate/fresh", BenchGenerateFresh(dir, work), &res.GenerateFresh},
	} {
		r := testing.Benchmark(m.f)
		if r.N == 0 {
			return nil, fmt.Errorf("%s failed", m.name)
		}
		*m.into = Op{N: r.N, NsPerOp: r.NsPerOp(), CPUPerOp: time.Duration(r.Extra["cpu-ns/op"]),
			AllocsPerOp: r.AllocsPerOp(), BytesPerOp: r.AllocedBytesPerOp()}
	}
	files, err := countFiles(filepath.Join(out, ".build"))
	if err != nil {
		return nil, err
	}
	res.Files = files

	for range runs {
		if err := os.RemoveAll(filepath.Join(dir, ".build")); err != nil {
			return nil, err
		}
		for _, step := range []struct {
			args []string
			into *[]Timing
		}{
			{[]string{"generate", "--offline-user"}, &res.CLIGenerateFresh},
			{[]string{"generate", "--offline-user"}, &res.CLIGenerate},
			{[]string{"validate"}, &res.CLIValidate},
		} {
			t, err := Run(ctx, dir, nil, bin, step.args...)
			if err != nil {
				return nil, err
			}
			*step.into = append(*step.into, t)
		}
	}
	return res, nil
}

func countFiles(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	return n, err
}
