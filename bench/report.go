package bench

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Machine describes where a benchmark ran.
type Machine struct {
	CPUs     int
	CPU      string // model name
	MemBytes uint64
	Kernel   string
	Go       string
	Buildkit string // module version ov is built with
	Date     time.Time
	// LoadStart and LoadEnd are /proc/loadavg's 1/5/15-minute averages:
	// other work on the machine inflates every wall time.
	LoadStart, LoadEnd string
}

// ThisMachine reads the machine's description from /proc.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC(), LoadStart: LoadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			var kb uint64
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemBytes = kb * 1024
				break
			}
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/moby/buildkit" {
				m.Buildkit = d.Version
			}
		}
	}
	return m
}

// LoadAvg is /proc/loadavg's first three fields, or "".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Row is one scenario with both contenders' timings from the same run.
type Row struct {
	Scenario string
	What     string          // what each contender does, for the table
	Ov, Bake []time.Duration // one per run
	// Target is the ratio ov/bake to beat (at most); 0 for none.
	Target float64
	Err    string // why the row has no figures
	// OvPhases and BakePhases are where the time of each contender's last
	// run went, per image and for the family (see BreakdownOf); nil when
	// the scenario does not measure them.
	OvPhases, BakePhases []Breakdown
	// LoadStart and LoadEnd are the load averages (LoadAvg) before and
	// after the scenario's runs.
	LoadStart, LoadEnd string
}

// QuietLoad is the 1-minute load average above which a scenario did not
// have the machine to itself.
const QuietLoad = 1.0

// Load1 is the 1-minute figure of a LoadAvg string, or -1.
func Load1(load string) float64 {
	var one float64
	if _, err := fmt.Sscan(load, &one); err != nil {
		return -1
	}
	return one
}

// Ratio is median(ov) / median(bake), or 0 without figures.
func (r Row) Ratio() float64 {
	o, b := Median(r.Ov), Median(r.Bake)
	if o == 0 || b == 0 {
		return 0
	}
	return float64(o) / float64(b)
}

// Met says whether the row meets its target.
func (r Row) Met() bool { return r.Target > 0 && r.Ratio() > 0 && r.Ratio() <= r.Target }

// ScaleResult is "generate at scale": in-process benchmarks and whole CLI
// processes on a WriteProject project.
type ScaleResult struct {
	Scale Scale
	Files int // files ov generate writes
	// In-process (testing.Benchmark).
	Validate, GenerateUnchanged, GenerateFresh Op
	// Whole ov processes, one sample per run.
	CLIValidate, CLIGenerate, CLIGenerateFresh []Timing
}

// Op is one in-process benchmark result.
type Op struct {
	N           int
	NsPerOp     int64
	CPUPerOp    time.Duration
	AllocsPerOp int64
	BytesPerOp  int64
}

// Target for validate + generate at issue-7 scale.
const ScaleTarget = 300 * time.Millisecond

// CLITotal is the median wall time of `ov validate` plus that of `ov
// generate` (unchanged output, the steady state).
func (s ScaleResult) CLITotal() time.Duration {
	return Median(walls(s.CLIValidate)) + Median(walls(s.CLIGenerate))
}

func walls(ts []Timing) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Wall
	}
	return out
}

func cpus(ts []Timing) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.CPU
	}
	return out
}

// Report is a whole benchmark run.
type Report struct {
	Machine Machine
	Command string // to reproduce
	Runs    int
	Rows    []Row
	Scale   *ScaleResult
	// NoopScale is the no-op at scale (MeasureNoopScale).
	NoopScale *NoopScaleResult
	Notes     []string
}

// Markdown renders the report for BENCHMARKS.md.
func (r Report) Markdown() []byte {
	var b bytes.Buffer
	m := r.Machine
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("ov build (LLB, straight to buildkitd) against `ov generate` + `docker buildx bake` (the\n")
	b.WriteString("Containerfile path), alternating, in the same run, on the same buildkitd; and ov's\n")
	b.WriteString("front end at scale. Medians; ratio = ov / bake (lower is better for ov).\n\n")
	fmt.Fprintf(&b, "Reproduce: `%s`\n\n", r.Command)
	b.WriteString("| machine | |\n|---|---|\n")
	fmt.Fprintf(&b, "| date | %s |\n", m.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "| CPU | %d × %s |\n", m.CPUs, cell(m.CPU))
	fmt.Fprintf(&b, "| memory | %.1f GiB |\n", float64(m.MemBytes)/(1<<30))
	fmt.Fprintf(&b, "| kernel | %s |\n", cell(m.Kernel))
	fmt.Fprintf(&b, "| Go, BuildKit | %s, %s |\n", m.Go, cell(m.Buildkit))
	fmt.Fprintf(&b, "| load average (1/5/15 min) at start, end | %s; %s |\n", cell(m.LoadStart), cell(m.LoadEnd))
	fmt.Fprintf(&b, "| runs per scenario | %d |\n\n", r.Runs)

	if len(r.Rows) > 0 {
		b.WriteString("## ov build vs bake\n\n")
		b.WriteString("| scenario | ov | bake | ratio | target | met |\n|---|---:|---:|---:|---:|---|\n")
		for _, row := range r.Rows {
			if row.Ratio() == 0 {
				fmt.Fprintf(&b, "| %s | – | – | – | %s | not measured: %s |\n", row.Scenario, target(row.Target), cell(row.Err))
				continue
			}
			met := "no"
			if row.Target == 0 {
				met = ""
			} else if row.Met() {
				met = "yes"
			}
			if row.Err != "" {
				met += fmt.Sprintf(" (%d/%d runs; then: %s)", min(len(row.Ov), len(row.Bake)), r.Runs, cell(row.Err))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %s | %s |\n", row.Scenario, dur(Median(row.Ov)), dur(Median(row.Bake)), row.Ratio(), target(row.Target), met)
		}
		b.WriteString("\n")
		for _, row := range r.Rows {
			if row.What != "" {
				fmt.Fprintf(&b, "- **%s**: %s\n", row.Scenario, row.What)
			}
		}
		b.WriteString("\nEvery run (ov / bake):\n\n")
		for _, row := range r.Rows {
			if row.Ratio() != 0 {
				fmt.Fprintf(&b, "- %s: %s / %s%s\n", row.Scenario, durs(row.Ov), durs(row.Bake), loads(row))
			}
		}
		b.WriteString("\n")
	}

	for _, row := range r.Rows {
		if len(row.OvPhases)+len(row.BakePhases) > 0 {
			phaseTables(&b, row)
		}
	}

	if s := r.Scale; s != nil {
		fmt.Fprintf(&b, "## Generate at scale (%d images, %d layers, seed %d)\n\n", s.Scale.Images, s.Scale.Layers, s.Scale.Seed)
		total := s.CLITotal()
		met := "no"
		if total < ScaleTarget {
			met = "yes"
		}
		fmt.Fprintf(&b, "`ov validate` + `ov generate --offline-user` (whole processes, median wall time): **%s** (target < %s: %s). ",
			dur(total), dur(ScaleTarget), met)
		fmt.Fprintf(&b, "The project is `bench.WriteProject`; generate writes %d files.\n\n", s.Files)
		b.WriteString("| | wall (median) | CPU user+sys (median) | allocs/op | bytes/op |\n|---|---:|---:|---:|---:|\n")
		cli := func(name string, ts []Timing) {
			if len(ts) > 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | | |\n", name, dur(Median(walls(ts))), dur(Median(cpus(ts))))
			}
		}
		cli("`ov validate` (process)", s.CLIValidate)
		cli("`ov generate --offline-user`, output unchanged (process)", s.CLIGenerate)
		cli("`ov generate --offline-user`, no .build/ yet (process)", s.CLIGenerateFresh)
		op := func(name string, o Op) {
			if o.N > 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %s |\n", name, dur(time.Duration(o.NsPerOp)), dur(o.CPUPerOp), o.AllocsPerOp, mib(o.BytesPerOp))
			}
		}
		op("`BenchmarkValidate` (spec.Load)", s.Validate)
		op("`BenchmarkGenerate/unchanged` (load + plan + write)", s.GenerateUnchanged)
		op("`BenchmarkGenerate/fresh`", s.GenerateFresh)
		b.WriteString("\n")
	}
	r.NoopScale.markdown(&b)
	notes := r.Notes
	for _, row := range r.Rows {
		if Load1(row.LoadStart) > QuietLoad {
			notes = append(notes, fmt.Sprintf("**%s** started at load %s (above %.1f): the machine was not quiet; its figures are not ov's alone.",
				row.Scenario, row.LoadStart, QuietLoad))
		}
	}
	if len(notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.Bytes()
}

// phaseTables renders a row's breakdowns.
func phaseTables(b *bytes.Buffer, row Row) {
	title := "Where the " + row.Scenario + " time goes"
	if row.Scenario == "cold" {
		title = "Where the cold time goes"
	}
	fmt.Fprintf(b, "## %s\n\n", title)
	b.WriteString("From BuildKit's own progress (each build's history record: vertex started and completed times), the last run of each contender; ")
	b.WriteString("for ov, also the phases of the export it runs itself (encoding layers, pushing, from its `--progress rawjson`). ")
	b.WriteString("Seconds; each cell is the wall-clock **union** of the phase's vertices, and in parentheses the **sum** of their durations ")
	b.WriteString("(larger when vertices run in parallel). An image's row counts the parent steps its build shared; the family row counts each vertex once. ")
	b.WriteString("compression and push are parts of export; idle is wall time with no vertex running (compiling, waiting for a parent's export).\n\n")
	cols := append(slices.Clone(Phases[:5]), PartCompress, PartPush, PhaseOther)
	for _, c := range []struct {
		name string
		bs   []Breakdown
	}{{"ov", row.OvPhases}, {"bake", row.BakePhases}} {
		if len(c.bs) == 0 {
			continue
		}
		fmt.Fprintf(b, "%s:\n\n| image | wall | %s | idle |\n|---|---:|%s---:|\n", c.name, strings.Join(cols, " | "), strings.Repeat("---:|", len(cols)))
		for _, br := range c.bs {
			fmt.Fprintf(b, "| %s | %s |", cell(br.Image), secs(br.Wall))
			for _, col := range cols {
				if br.Sum[col] == 0 {
					b.WriteString(" – |")
					continue
				}
				fmt.Fprintf(b, " %s (%s) |", secs(br.Union[col]), secs(br.Sum[col]))
			}
			fmt.Fprintf(b, " %s |\n", secs(br.Idle))
		}
		b.WriteString("\n")
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// cell keeps a value from breaking the table.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// loads is a row's load averages, for its runs' line.
func loads(row Row) string {
	if row.LoadStart == "" {
		return ""
	}
	return fmt.Sprintf(" (load average %s before, %s after)", row.LoadStart, cell(row.LoadEnd))
}

func target(t float64) string {
	if t == 0 {
		return ""
	}
	return fmt.Sprintf("≤ %.2f", t)
}

// dur prints milliseconds below 10 s, seconds above.
func dur(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func durs(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = dur(d)
	}
	return strings.Join(s, ", ")
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
