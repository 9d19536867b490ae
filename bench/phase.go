package bench

import (
	"slices"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
)

// Phases of a build, from BuildKit's vertex names (Phase), in table order.
const (
	PhaseSteps  = "steps"  // a layer's or the image's RUN, COPY, ...
	PhaseDiffs  = "diffs"  // ov: a detached group's diff, the attached steps', a child's on its parent
	PhaseMerges = "merges" // ov: a group's foundation, the image's merge, its merge for children
	PhaseCheck  = "check"  // ov: the detached-layer check
	PhaseExport = "export" // exporting to an image, layout, archive, engine
	PhaseOther  = "other"  // base pulls, layer files, definitions, cache-mount setup
)

// Phases in table order.
var Phases = []string{PhaseSteps, PhaseDiffs, PhaseMerges, PhaseCheck, PhaseExport, PhaseOther}

// Parts of the export, from the export vertex's statuses (ExportPart).
const (
	PartCompress = "compression" // "exporting layers": diffing and compressing
	PartPush     = "push"        // "pushing layers", "pushing manifest for ..."
)

// Phase classifies a vertex by its name: ov's labels ("[image layer]
// desc", see llb's compiler.label), the Dockerfile frontend's ("[image
// 2/7] RUN ...", "[image internal] load ..."), and BuildKit's own
// ("exporting to image", "[internal] ...", "resolve image config ...").
func Phase(name string) string {
	if strings.HasPrefix(name, "exporting to ") || name == "exporting cache" || strings.HasPrefix(name, "exporting cache ") {
		return PhaseExport
	}
	prefix, desc, ok := strings.Cut(name, "] ")
	if !ok || !strings.HasPrefix(prefix, "[") {
		return PhaseOther
	}
	if _, ok := ovExport(desc); ok {
		return PhaseExport
	}
	switch desc {
	case "diff", "diff of attached steps", "diff on parent":
		return PhaseDiffs
	case "foundation", "merge layers", "merge for children", "on parent":
		return PhaseMerges
	case "check detached layers":
		return PhaseCheck
	}
	words := strings.Fields(prefix[1:])
	if len(words) == 0 || slices.Contains(words, "internal") || slices.Contains(words, "context") || words[0] == "layer" ||
		strings.HasPrefix(desc, "FROM ") || strings.HasPrefix(desc, "load ") || strings.HasPrefix(desc, "setting cache mount") {
		return PhaseOther
	}
	return PhaseSteps
}

// ExportPart classifies a status of an export vertex, or "".
func ExportPart(id string) string {
	switch {
	case id == "exporting layers":
		return PartCompress
	case strings.HasPrefix(id, "pushing "):
		return PartPush
	}
	return ""
}

// ovExport says whether desc names a phase of an export on ov's side (see
// export.WithProgress: "[image] encoding layers", "[image] pushing TAGS",
// "[image] writing OCI layout DIR", ...), and which part of the export it
// is ("" for none).
func ovExport(desc string) (part string, ok bool) {
	switch {
	case desc == "encoding layers", desc == "merging layers":
		return PartCompress, true
	case strings.HasPrefix(desc, "pushing "):
		return PartPush, true
	case strings.HasPrefix(desc, "writing OCI "), strings.HasPrefix(desc, "docker load "), strings.HasPrefix(desc, "podman load "):
		return "", true
	}
	return "", false
}

// Breakdown is where one image's build time went (or a family's: every
// image's build records together).
type Breakdown struct {
	Image string
	// Wall is the build's wall time, first record's start to last one's
	// end.
	Wall time.Duration
	// Sum is, per phase and export part, the sum of its vertices'
	// durations (more than the wall time it took when they overlap);
	// Union the wall time during which at least one of them ran.
	Sum, Union map[string]time.Duration
	// Idle is the wall time no vertex ran: compiling, the gateway,
	// waiting for a parent's export.
	Idle time.Duration
}

// Progress is what a build reported: its vertices and their statuses,
// possibly repeated as they progress (the last report of each counts).
type Progress struct {
	Start, End time.Time
	Vertices   []*client.Vertex
	Statuses   []*client.VertexStatus
}

type span struct{ start, end time.Time }

// Breakdown computes where the time of builds went. A vertex two of them
// share (a parent's step in each child's build) counts once.
func BreakdownOf(image string, builds ...Progress) Breakdown {
	b := Breakdown{Image: image, Sum: map[string]time.Duration{}, Union: map[string]time.Duration{}}
	var start, end time.Time
	vertices := map[string]*client.Vertex{}
	statuses := map[string]*client.VertexStatus{}
	for _, p := range builds {
		if start.IsZero() || p.Start.Before(start) {
			start = p.Start
		}
		if p.End.After(end) {
			end = p.End
		}
		for _, v := range p.Vertices {
			vertices[v.Digest.String()] = v
		}
		for _, s := range p.Statuses {
			statuses[s.Vertex.String()+" "+s.ID] = s
		}
	}
	b.Wall = end.Sub(start)
	// A vertex runs from its start, or its first status's, to its end, or
	// its last status's: BuildKit reports an export's vertex times for its
	// last part, its statuses (compressing, pushing) for each.
	hull := map[string]span{}
	for _, v := range vertices {
		if v.Started != nil && v.Completed != nil && !v.Cached {
			hull[v.Digest.String()] = span{*v.Started, *v.Completed}
		}
	}
	spans := map[string][]span{}
	for _, s := range statuses {
		v := vertices[s.Vertex.String()]
		h, ok := hull[s.Vertex.String()]
		if !ok || s.Started == nil || s.Completed == nil {
			continue
		}
		hull[s.Vertex.String()] = span{minTime(h.start, *s.Started), maxTime(h.end, *s.Completed)}
		if part := ExportPart(s.ID); part != "" && Phase(v.Name) == PhaseExport {
			spans[part] = append(spans[part], span{*s.Started, *s.Completed})
		}
	}
	var all []span
	for d, s := range hull {
		ph := Phase(vertices[d].Name)
		spans[ph] = append(spans[ph], s)
		all = append(all, s)
		if _, desc, ok := strings.Cut(vertices[d].Name, "] "); ok && ph == PhaseExport {
			if part, ok := ovExport(desc); ok && part != "" {
				spans[part] = append(spans[part], s)
			}
		}
	}
	for ph, ss := range spans {
		for _, s := range ss {
			b.Sum[ph] += s.end.Sub(s.start)
		}
		b.Union[ph] = union(ss)
	}
	if !start.IsZero() {
		b.Idle = max(0, b.Wall-union(all))
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// union is the length of the union of spans.
func union(ss []span) time.Duration {
	ss = slices.Clone(ss)
	slices.SortFunc(ss, func(a, b span) int { return a.start.Compare(b.start) })
	var total time.Duration
	var cur span
	for i, s := range ss {
		switch {
		case i == 0:
			cur = s
		case !s.start.After(cur.end):
			if s.end.After(cur.end) {
				cur.end = s.end
			}
		default:
			total += cur.end.Sub(cur.start)
			cur = s
		}
	}
	if len(ss) > 0 {
		total += cur.end.Sub(cur.start)
	}
	return total
}
