package llb

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// statusLog collects what a build reports: every vertex update of
// BuildOptions.Status, in order, and the notices of BuildOptions.Warn. The
// vertex accessors wait until Build closed the channel. onVertex, when set,
// sees each update as it arrives (to act during the build).
type statusLog struct {
	onVertex func(*client.Vertex)

	done     chan struct{}
	vertexes []*client.Vertex
	mu       sync.Mutex
	warnings []string
}

// channel is the BuildOptions.Status of one build.
func (s *statusLog) channel() chan *client.SolveStatus {
	ch := make(chan *client.SolveStatus)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		for st := range ch {
			for _, v := range st.Vertexes {
				if s.onVertex != nil {
					s.onVertex(v)
				}
				s.vertexes = append(s.vertexes, v)
			}
		}
	}()
	return ch
}

// warn is the BuildOptions.Warn.
func (s *statusLog) warn(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.warnings = append(s.warnings, msg)
}

// warns are the notices so far, sorted.
func (s *statusLog) warns() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.warnings))
}

// all is every vertex update.
func (s *statusLog) all() []*client.Vertex {
	<-s.done
	return s.vertexes
}

// names are the vertex names, sorted, once each.
func (s *statusLog) names() []string {
	var out []string
	for _, v := range s.all() {
		out = append(out, v.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// cached says, per vertex name that completed, whether BuildKit reported it
// cached. A vertex can complete in several solves (the check, then the
// image): cached only if it never ran.
func (s *statusLog) cached() map[string]bool {
	out := map[string]bool{}
	for _, v := range s.all() {
		if v.Completed != nil && v.Error == "" {
			prev, seen := out[v.Name]
			out[v.Name] = v.Cached && (!seen || prev)
		}
	}
	return out
}

// ran counts the vertices named ...suffix that ran (not cached), and their
// total time.
func (s *statusLog) ran(suffix string) (n int, total time.Duration) {
	seen := map[digest.Digest]bool{}
	for _, v := range s.all() {
		if strings.HasSuffix(v.Name, suffix) && v.Started != nil && v.Completed != nil && !v.Cached && !seen[v.Digest] {
			seen[v.Digest] = true
			total += v.Completed.Sub(*v.Started)
			n++
		}
	}
	return n, total
}
