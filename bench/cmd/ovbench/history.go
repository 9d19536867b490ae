package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"

	"github.com/overthink/ov/bench"
)

// breakdown reads buildkitd's build history for the builds that ran
// between start and end (one per image, more when ov builds an image
// again after a check), and the phases of ov's own side of the exports
// from the rawjson progress in log (none when ""), and returns where their
// time went, per image and, last, for the family.
func breakdown(ctx context.Context, bc *client.Client, start, end time.Time, log string) ([]bench.Breakdown, error) {
	hist, err := bc.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{EarlyExit: true})
	if err != nil {
		return nil, err
	}
	byImage := map[string][]bench.Progress{}
	var all []bench.Progress
	for {
		ev, err := hist.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		r := ev.Record
		if r == nil || r.CreatedAt == nil || r.CompletedAt == nil {
			continue
		}
		p := bench.Progress{Start: r.CreatedAt.AsTime(), End: r.CompletedAt.AsTime()}
		if p.Start.Before(start) || p.End.After(end) {
			continue
		}
		if err := readProgress(ctx, bc, r.Ref, &p); err != nil {
			return nil, err
		}
		name := imageOf(r)
		byImage[name] = append(byImage[name], p)
		all = append(all, p)
	}
	if log != "" {
		own, err := ovPhases(log)
		if err != nil {
			return nil, err
		}
		for name, p := range own {
			byImage[name] = append(byImage[name], p)
			all = append(all, p)
		}
	}
	var out []bench.Breakdown
	for _, name := range slices.Sorted(maps.Keys(byImage)) {
		out = append(out, bench.BreakdownOf(name, byImage[name]...))
	}
	if len(all) > 0 {
		out = append(out, bench.BreakdownOf("family", all...))
	}
	return out, nil
}

// readProgress replays a finished build's progress from its history
// record.
func readProgress(ctx context.Context, bc *client.Client, ref string, p *bench.Progress) error {
	st, err := bc.ControlClient().Status(ctx, &controlapi.StatusRequest{Ref: ref})
	if err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s := client.NewSolveStatus(resp)
		p.Vertices = append(p.Vertices, s.Vertexes...)
		p.Statuses = append(p.Statuses, s.Statuses...)
	}
}

// imageOf names a build by the image it exported ("deb-parent" for
// "127.0.0.1:5000/bench/deb-parent:bench"), or its ref.
func imageOf(r *controlapi.BuildHistoryRecord) string {
	for _, e := range r.Exporters {
		name, _, _ := strings.Cut(e.Attrs["name"], ",")
		if n, err := reference.ParseNormalizedNamed(name); err == nil {
			p := reference.Path(n)
			return p[strings.LastIndex(p, "/")+1:]
		}
	}
	return r.Ref
}

// ovPhases reads the vertices of ov's own export phases (named "[image]
// ...", see bench.Phase) from a log of `ov build --progress rawjson`, by
// image: they run in ov, so buildkitd's history has none of them.
func ovPhases(log string) (map[string]bench.Progress, error) {
	f, err := os.Open(log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bench.Progress{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var st client.SolveStatus
		if json.Unmarshal(line, &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			prefix, _, ok := strings.Cut(v.Name, "] ")
			if !ok || bench.Phase(v.Name) != bench.PhaseExport || v.Started == nil || v.Completed == nil {
				continue
			}
			name := strings.TrimPrefix(prefix, "[")
			p := out[name]
			if p.Start.IsZero() || v.Started.Before(p.Start) {
				p.Start = *v.Started
			}
			if v.Completed.After(p.End) {
				p.End = *v.Completed
			}
			p.Vertices = append(p.Vertices, v)
			out[name] = p
		}
	}
	return out, sc.Err()
}
