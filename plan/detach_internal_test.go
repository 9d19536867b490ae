package plan

import (
	"strconv"
	"testing"
	"time"
)

// A 20,000-deep depends chain whose every layer has an attached step (its
// packages) and a detached own-file step: every own-file step below the
// top must attach, and planning stays near-linear (a closure per layer
// took 88 s here).
func TestDetachDeepChainLinear(t *testing.T) {
	const n = 20000
	deps := make(map[string][]string, n)
	var steps []Step
	for i := range n {
		l := "l" + strconv.Itoa(i)
		if i > 0 {
			deps[l] = []string{"l" + strconv.Itoa(i-1)}
		}
		steps = append(steps, Step{Layer: l}, Step{Layer: l, Detach: true})
	}
	start := time.Now()
	detach(steps, deps)
	took := time.Since(start)
	for i, s := range steps {
		top := s.Layer == "l"+strconv.Itoa(n-1)
		if s.Detach != (top && i%2 == 1) {
			t.Fatalf("step %d (%s): Detach %v", i, s.Layer, s.Detach)
		}
	}
	if took > 5*time.Second {
		t.Errorf("detach of a %d-deep chain took %v", n, took)
	}
	t.Logf("detach of a %d-deep chain: %v", n, took)
}
