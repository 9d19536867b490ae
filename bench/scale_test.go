package bench

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// project writes the issue-7 scale project once per test binary.
var project = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ov-bench-scale-")
	if err != nil {
		return "", err
	}
	return dir, WriteProject(dir, Issue7)
})

func scaleProject(b *testing.B) string {
	b.Helper()
	dir, err := project()
	if err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkValidate is spec.Load (ov validate) on 100 images / 500 layers.
func BenchmarkValidate(b *testing.B) {
	dir := scaleProject(b)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := Validate(dir); err != nil {
			b.Fatal(err)
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

// BenchmarkGenerate is load + plan + write (ov generate --offline-user) on
// 100 images / 500 layers: "fresh" writes into an empty directory each time
// (the first generate), "unchanged" rewrites the same output (every later
// one).
func BenchmarkGenerate(b *testing.B) {
	dir := scaleProject(b)
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			b.StopTimer()
			out := b.TempDir()
			b.StartTimer()
			if err := Generate(dir, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		out := b.TempDir()
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
	})
}

// ovBinary builds cmd/ov once per test binary.
var ovBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ov-bench-bin-")
	if err != nil {
		return "", err
	}
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	return BuildOV(context.Background(), root, dir)
})

// BenchmarkCLI times whole ov processes on the scale project: ns/op is the
// wall time of one run, start-up included. The project is copied so that
// generate's .build/ does not land in the shared one.
func BenchmarkCLI(b *testing.B) {
	bin, err := ovBinary()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := WriteProject(dir, Issue7); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"validate", []string{"validate"}},
		{"generate", []string{"generate", "--offline-user"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				t, err := Run(ctx, dir, nil, bin, bc.args...)
				if err != nil {
					b.Fatal(err)
				}
				cpu += t.CPU
			}
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
