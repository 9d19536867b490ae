package explain

import (
	"fmt"
	"io"

	"strings"

	"github.com/overthink/ov/plan"
)

// Verdict says whether one row (a layer, RowSetup or RowImage) is rebuilt.
type Verdict struct {
	Row     string
	Rebuild bool
	Reason  string // the first changed input; "" when reused
}

// Report is one image's verdicts, in build order.
type Report struct {
	Image   string
	Base    string // the base and whether it changed, for the header
	Rebuild bool   // anything in the image reruns: its children rebuild
	Rows    []Verdict
}

// Family diffs the records of a family (parents first, as plan.Build
// orders them) against the recorded ones; old returns nil for an image
// without a record.
func Family(cur []*Record, old func(image string) *Record) []Report {
	reps := make([]Report, 0, len(cur))
	byName := map[string]*Report{}
	for _, r := range cur {
		var parent *Report
		if r.Parent {
			parent = byName[r.Base]
		}
		reps = append(reps, Diff(old(r.Image), r, parent))
		byName[r.Image] = &reps[len(reps)-1]
	}
	return reps
}

// Diff says what of cur reruns given that old was built; parent is the
// parent image's report when cur builds on one.
func Diff(old, cur *Record, parent *Report) Report {
	rep := Report{Image: cur.Image, Base: baseLine(old, cur, parent)}
	var whole string
	switch {
	case old == nil:
		whole = "never built here"
	case old.Builder != cur.Builder:
		whole = "last built on builder " + old.Builder
	}
	if whole != "" {
		for _, row := range rows(cur) {
			rep.Rows = append(rep.Rows, Verdict{Row: row, Rebuild: true, Reason: whole})
		}
		rep.Rebuild = true
		return rep
	}

	d := differ{old: old, cur: cur, oldSteps: map[string]Step{}}
	var oldAttached []Step
	for _, s := range old.Steps {
		d.oldSteps[s.Key] = s
		if !s.Detach {
			oldAttached = append(oldAttached, s)
		}
	}
	curKeys := map[string]bool{}
	for _, s := range cur.Steps {
		curKeys[s.Key] = true
	}
	// layerChange says why a layer's result differs from the recorded one.
	layerChange := map[string]string{}
	for _, s := range old.Steps {
		if !curKeys[s.Key] && s.Layer != "" && layerChange[s.Layer] == "" {
			layerChange[s.Layer] = d.changedSteps(s.Layer) // a step went away
		}
	}
	rowReason := map[string]string{}
	for l, why := range layerChange {
		rowReason[l] = why
	}

	chain := d.baseChange(parent) // why the attached chain so far differs
	attached := 0
	for _, s := range cur.Steps {
		var why string
		if !s.Detach {
			switch {
			case chain != "":
				why = chain
			case attached >= len(oldAttached) || oldAttached[attached].Key != s.Key:
				why = d.newStep(s)
			default:
				why = d.own(oldAttached[attached], s)
			}
			if chain == "" && why != "" {
				chain = after(s, why)
			}
			attached++
		} else {
			o, ok := d.oldSteps[s.Key]
			switch {
			case chain != "":
				why = chain
			case !ok || !o.Detach:
				why = d.newStep(s)
			case o.Pos != s.Pos:
				why = "attached steps before it changed"
			default:
				why = d.own(o, s)
			}
			if why == "" {
				why = layerChange[s.Layer] // an earlier step of its layer
			}
			for _, dep := range plan.Closure(cur.Depends, s.Layer) {
				if why == "" && layerChange[dep] != "" {
					why = "depends on " + dep + ", which changes"
				}
			}
		}
		if why == "" {
			continue
		}
		if s.Layer != "" && layerChange[s.Layer] == "" {
			layerChange[s.Layer] = why
		}
		if rowReason[s.Row] == "" {
			rowReason[s.Row] = why
		}
	}
	for _, row := range rows(cur) {
		v := Verdict{Row: row, Rebuild: rowReason[row] != "", Reason: rowReason[row]}
		rep.Rebuild = rep.Rebuild || v.Rebuild
		rep.Rows = append(rep.Rows, v)
	}
	return rep
}

// rows lists cur's rows: setup, the own layers in install order (those
// without steps too), image-level steps.
func rows(cur *Record) []string {
	var out []string
	add := func(r string) {
		if !contains(out, r) {
			out = append(out, r)
		}
	}
	add(RowSetup)
	for _, s := range cur.Steps {
		if s.Row != RowImage && s.Row != RowSetup {
			add(s.Row)
		}
	}
	for _, l := range cur.Layers {
		add(l) // layers without steps (env, ports, services only)
	}
	for _, s := range cur.Steps {
		if s.Row == RowImage {
			add(RowImage)
		}
	}
	return out
}

// firstLayer names the first of r's layers that rebuilds, " (layer x)",
// or "" when the setup or image-level steps rebuild first.
func (r *Report) firstLayer() string {
	for _, v := range r.Rows {
		switch {
		case !v.Rebuild:
		case v.Row == RowSetup || v.Row == RowImage:
			return ""
		default:
			return " (layer " + v.Row + ")"
		}
	}
	return ""
}

// after is why the attached steps after s rerun, s rerunning for why.
func after(s Step, why string) string {
	switch {
	case s.Row == RowSetup:
		return why
	case s.Layer != "":
		return "after attached layer " + s.Layer + ", which changes"
	}
	return "after image step " + s.Desc + ", which changes"
}

type differ struct {
	old, cur *Record
	oldSteps map[string]Step
}

func (d *differ) baseChange(parent *Report) string {
	old, cur := d.old, d.cur
	if old.Base != cur.Base || old.Parent != cur.Parent {
		return fmt.Sprintf("base changed (%s -> %s)", old.Base, cur.Base)
	}
	if parent != nil && parent.Rebuild {
		return "parent " + cur.Base + " changes" + parent.firstLayer()
	}
	for _, p := range sortedKeys(cur.Platforms) {
		o, ok := old.Platforms[p]
		if !ok {
			return "not built for " + p + " here"
		}
		if n := cur.Platforms[p]; o != "" && n != "" && o != n {
			return fmt.Sprintf("base %s digest changed (%s -> %s)", cur.Base, short(o), short(n))
		}
	}
	return ""
}

// newStep is why a step with no recorded counterpart (at its place) runs.
func (d *differ) newStep(s Step) string {
	if s.Layer != "" && !d.hadLayer(s.Layer) {
		return "new layer"
	}
	return d.changedSteps(s.Layer)
}

func (d *differ) hadLayer(l string) bool {
	for _, s := range d.old.Steps {
		if s.Layer == l {
			return true
		}
	}
	return false
}

// changedSteps is why layer l's steps differ: its layer.yml when that
// changed (steps come from it), else the steps themselves (the plan).
func (d *differ) changedSteps(l string) string {
	if l != "" && d.old.LayerYml[l] != d.cur.LayerYml[l] {
		return "layer.yml changed"
	}
	return "steps changed"
}

// own is why step s reruns on the same foundation as o: its fields or
// what it reads changed.
func (d *differ) own(o, s Step) string {
	if o.Hash != s.Hash {
		if s.Row == RowSetup && s.Desc == "environment" {
			for _, l := range d.cur.Layers {
				if d.old.LayerYml[l] != d.cur.LayerYml[l] {
					return "environment changed (layer.yml of " + l + ")"
				}
			}
			return "environment changed"
		}
		return d.changedSteps(s.Layer)
	}
	for _, r := range s.Reads {
		if why := d.stage(r, s.Layer, 0); why != "" {
			return why
		}
	}
	return ""
}

// stage is why stage name's content changed, "" if it did not.
func (d *differ) stage(name, layer string, depth int) string {
	o, ook := d.old.Stages[name]
	n, nok := d.cur.Stages[name]
	switch {
	case !ook && !nok:
		return ""
	case !ook || !nok:
		return "files of " + name + " changed"
	case o.Hash != n.Hash:
		switch name {
		case plan.StageSupervisord:
			return "supervisord fragments changed"
		case plan.StageTraefik:
			return "traefik routes changed"
		}
		return "stage " + name + " changed"
	}
	all := map[string]bool{}
	for p := range o.Files {
		all[p] = true
	}
	for p := range n.Files {
		all[p] = true
	}
	for _, p := range sortedKeys(all) {
		of, nf := o.Files[p], n.Files[p]
		if of == nf {
			continue
		}
		if name == layer && p == n.Dir+"/layer.yml" {
			return "layer.yml changed"
		}
		switch {
		case of == "":
			return "file " + p + " added"
		case nf == "":
			return "file " + p + " removed"
		}
		return "file " + p + " changed"
	}
	if depth < 4 {
		for _, r := range n.Reads {
			if why := d.stage(r, layer, depth+1); why != "" {
				return why
			}
		}
	}
	return ""
}

func short(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12] + "…"
}

func baseLine(old, cur *Record, parent *Report) string {
	if cur.Parent {
		state := "unchanged"
		if parent != nil && parent.Rebuild {
			state = "changes"
		}
		return fmt.Sprintf("base %s (%s)", cur.Base, state)
	}
	if cur.Digest == "" {
		why := cur.DigestErr
		if why == "" {
			why = "not resolved"
		}
		return fmt.Sprintf("base %s digest unknown (%s)", cur.Base, why)
	}
	state := "unchanged"
	switch {
	case old == nil || old.Parent || old.Base != cur.Base:
		state = "new here"
	case old.Digest == "":
		state = "not recorded before"
	case old.Digest != cur.Digest:
		state = "changed from " + short(old.Digest)
	}
	return fmt.Sprintf("base %s@%s (%s)", cur.Base, short(cur.Digest), state)
}

// Print writes the reports, one header per image and one aligned line per
// row.
func Print(w io.Writer, reps []Report) error {
	width := 0
	for _, r := range reps {
		for _, v := range r.Rows {
			width = max(width, len(v.Row))
		}
	}
	var b strings.Builder
	for _, r := range reps {
		fmt.Fprintf(&b, "%s: %s, %s\n", r.Image, word(r.Rebuild), r.Base)
		for _, v := range r.Rows {
			line := fmt.Sprintf("  %-*s  %-7s  %s", width, v.Row, word(v.Rebuild), v.Reason)
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func word(rebuild bool) string {
	if rebuild {
		return "rebuild"
	}
	return "reuse"
}
