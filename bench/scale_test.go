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
func BenchmarkValidate(b *testing.B) { BenchValidate(scaleProject(b))(b) }

// BenchmarkGenerate is load + plan + write (ov generate --offline-user) on
// 100 images / 500 layers: "fresh" writes into an empty directory each time
// (the first generate), "unchanged" rewrites the same output (every later
// one).
func BenchmarkGenerate(b *testing.B) {
	dir := scaleProject(b)
	b.Run("fresh", func(b *testing.B) { BenchGenerateFresh(dir, b.TempDir())(b) })
	b.Run("unchanged", func(b *testing.B) { BenchGenerateUnchanged(dir, b.TempDir())(b) })
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
// wall time of one run, start-up included; generate's output is there
// already (unchanged), as in BENCHMARKS.md's table, whose headline is
// validate + generate (there the sum of the medians). The project is
// copied so that generate's .build/ does not land in the shared one.
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
	validate, generate := []string{"validate"}, []string{"generate", "--offline-user"}
	if _, err := Run(ctx, dir, nil, bin, generate...); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		runs [][]string
	}{
		{"validate", [][]string{validate}},
		{"generate", [][]string{generate}},
		{"validate+generate", [][]string{validate, generate}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				for _, args := range bc.runs {
					t, err := Run(ctx, dir, nil, bin, args...)
					if err != nil {
						b.Fatal(err)
					}
					cpu += t.CPU
				}
			}
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
