package bench

import (
	"strings"
	"testing"
	"time"
)

// TestNoopScaleReport: the total is the median of the runs' sums (not the
// sum of the phases' medians), and the report says it against the target.
func TestNoopScaleReport(t *testing.T) {
	r := &NoopScaleResult{Scale: Issue7, Images: 100, Tags: 185,
		Validate:    []time.Duration{100 * ms, 100 * ms, 100 * ms},
		Plan:        []time.Duration{100 * ms, 100 * ms, 100 * ms},
		Fingerprint: []time.Duration{100 * ms, 900 * ms, 100 * ms},
		Checks:      []time.Duration{100 * ms, 100 * ms, 900 * ms},
		CPU:         []time.Duration{300 * ms, 500 * ms, 400 * ms},
	}
	if got := r.Total(); got != 1200*ms {
		t.Errorf("total %v, want 1.2s", got)
	}
	md := string(Report{NoopScale: r}.Markdown())
	if !strings.Contains(md, "## No-op at scale (100 images, 500 layers, seed 7)") || !strings.Contains(md, "**1200 ms** (target < 1000 ms: no); CPU time (user + system) 400 ms") {
		t.Errorf("report:\n%s", md)
	}
	if strings.Contains(string(Report{NoopScale: &NoopScaleResult{}}.Markdown()), "No-op at scale") {
		t.Error("a result without runs is reported")
	}
}
