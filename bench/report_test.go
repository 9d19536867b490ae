package bench

import (
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5 * ms}, 5 * ms},
		{[]time.Duration{9 * ms, 1 * ms, 5 * ms}, 5 * ms},
		{[]time.Duration{4 * ms, 1 * ms, 2 * ms, 100 * ms}, 3 * ms},
	} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRowRatio(t *testing.T) {
	r := Row{Ov: []time.Duration{10 * ms, 30 * ms, 20 * ms}, Bake: []time.Duration{80 * ms, 40 * ms, 100 * ms}, Target: 0.3}
	if got := r.Ratio(); got != 0.25 {
		t.Errorf("ratio %v, want 0.25", got)
	}
	if !r.Met() {
		t.Error("0.25 does not meet 0.3")
	}
	r.Target = 0.2
	if r.Met() {
		t.Error("0.25 meets 0.2")
	}
	if (Row{Ov: []time.Duration{ms}, Target: 1}).Met() {
		t.Error("a row without bake figures meets its target")
	}
}

func TestMarkdown(t *testing.T) {
	rep := Report{
		Machine: Machine{CPUs: 2, CPU: "Some|CPU", MemBytes: 24 << 30, Kernel: "6.1", Date: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		Command: "go tool task bench",
		Runs:    3,
		Rows: []Row{
			{Scenario: "no-op", Ov: []time.Duration{100 * ms}, Bake: []time.Duration{400 * ms}, Target: 0.5, What: "nothing changed",
				LoadStart: "0.30 0.20 0.10", LoadEnd: "0.40 0.20 0.10"},
			{Scenario: "cold", Ov: []time.Duration{95 * time.Second}, Bake: []time.Duration{100 * time.Second}, Target: 0.9,
				LoadStart: "1.52 0.90 0.40", LoadEnd: "2.00 1.10 0.50",
				OvPhases: []Breakdown{{Image: "deb-parent", Wall: 90 * time.Second, Idle: 2 * time.Second,
					Sum:   map[string]time.Duration{PhaseSteps: 70 * time.Second, PhaseCheck: 3 * time.Second},
					Union: map[string]time.Duration{PhaseSteps: 50 * time.Second, PhaseCheck: 3 * time.Second}}}},
			{Scenario: "merge", Target: 0.33, Err: "docker: not found\nmore"},
			{Scenario: "partial", Ov: []time.Duration{time.Second}, Bake: []time.Duration{2 * time.Second}, Target: 0.6, Err: "boom"},
		},
		Scale: &ScaleResult{Scale: Issue7, Files: 1234,
			CLIValidate: []Timing{{Wall: 80 * ms, CPU: 90 * ms}},
			CLIGenerate: []Timing{{Wall: 150 * ms, CPU: 200 * ms}},
			Validate:    Op{N: 10, NsPerOp: int64(50 * ms), AllocsPerOp: 1000, BytesPerOp: 1 << 20}},
	}
	md := string(rep.Markdown())
	for _, want := range []string{
		"Reproduce: `go tool task bench`",
		`| CPU | 2 × Some\|CPU |`,
		"| memory | 24.0 GiB |",
		"| no-op | 100 ms | 400 ms | 0.25 | ≤ 0.50 | yes |",
		"| cold | 95.0 s | 100.0 s | 0.95 | ≤ 0.90 | no |",
		"| merge | – | – | – | ≤ 0.33 | not measured: docker: not found more |",
		"| partial | 1000 ms | 2000 ms | 0.50 | ≤ 0.60 | yes (1/3 runs; then: boom) |",
		"- **no-op**: nothing changed",
		"## Where the cold time goes",
		"| image | wall | steps | diffs | merges | check | export | compression | push | other | idle |",
		"| deb-parent | 90.0 | 50.0 (70.0) | – | – | 3.0 (3.0) | – | – | – | – | 2.0 |",
		"- cold: 95.0 s / 100.0 s (load average 1.52 0.90 0.40 before, 2.00 1.10 0.50 after)",
		"- **cold** started at load 1.52 0.90 0.40 (above 1.0): the machine was not quiet",
		"**230 ms** (target < 300 ms: yes)",
		"| `BenchmarkValidate` (spec.Load) | 50 ms | 0 ms | 1000 | 1.0 MiB |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "**no-op** started at load") {
		t.Errorf("a scenario at load 0.30 is called busy:\n%s", md)
	}
}
