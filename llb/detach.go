package llb

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	bk "github.com/moby/buildkit/client/llb"

	"github.com/overthink/ov/plan"
)

// Detached steps (plan.Step.Detach).
//
// A Containerfile is one chain: an edit in an early layer reruns every layer
// after it. The compiler instead keeps only the attached steps (bootstrap,
// package installs, image-level steps) in the chain and runs each group of
// detached steps — the consecutive detached steps of one layer — on the chain
// as it stands at the group's place, plus the earlier groups of its own layer
// and of the layers it depends on. The image is the merge of the chain's
// segments and the groups' diffs, in step order:
//
//	Merge(c0, g1, Diff(c0, c1), g2, ...)    gN = Diff(foundation, foundation+steps)
//
// so each step adds exactly what it added in the chain, at the same place,
// and an edit to one layer reruns only that layer, the layers depending on
// it and the merge.
//
// A child's steps need that filesystem materialized. BuildKit stacks a
// merge's leading chain without copying and copies the rest, and the chain
// stops at the first group: merged in step order, every attached step
// after it (a distribution's packages) would be copied. Children therefore
// run on Image.Run, Merge(chain end, g1, g2, ...), which the check proves
// equal to the step-order merge, and export on the step-order merge.
//
// That equals the linear build when a group neither reads nor writes what
// the steps it does not see wrote. Reads are what depends is for (ov build
// --verify finds missing ones); a layer whose step fails on its foundation
// (deleting or reading a file it does not see) runs on every group before
// it instead (Options.SeeAll). Writes are checked after the solve, over
// every path: see check.

// checkDir is where the check step mounts its inputs; checkOut holds its
// report: one line per conflict, "layer other-layer path" (other-layer "-"
// for the attached chain).
const (
	checkDir   = "/.ov-check"
	checkOut   = checkDir + "/out"
	CheckFile  = "/conflicts"
	chainLayer = "-"
)

// group is one run of detached steps.
type group struct {
	layer          string
	fnd, top, diff bk.State // diff = Diff(fnd, top)
	chain          int      // attached steps run before it
}

// detached compiles steps with detached groups, leaving the merged state in
// c.main. It returns the check (nil without groups).
func (c *compiler) detached(ctx context.Context, steps []plan.Step) (*Check, error) {
	var (
		groups  []group
		marks   []bk.State // chain state after each attached step; marks[0] = c0
		parts   = []bk.State{c.exported(c.main.st)}
		flushed = 0 // attached steps already in parts
	)
	marks = append(marks, c.main.st)
	flush := func() {
		if n := len(marks) - 1; n > flushed {
			parts = append(parts, bk.Diff(marks[flushed], marks[n], c.label("", "diff of attached steps").opt()))
			flushed = n
		}
	}
	for i := 0; i < len(steps); {
		s := steps[i]
		if !c.detaches(s) {
			if err := c.step(ctx, s); err != nil {
				return nil, err
			}
			marks = append(marks, c.main.st)
			i++
			continue
		}
		j := i + 1
		for j < len(steps) && c.detaches(steps[j]) && steps[j].Layer == s.Layer {
			j++
		}
		// The foundation: the chain here, and the groups this one sees.
		chain := c.main.st
		inputs := []bk.State{chain}
		for _, g := range groups {
			if c.sees(s.Layer, g.layer) {
				inputs = append(inputs, g.diff)
			}
		}
		fnd := bk.Merge(inputs, c.label(s.Layer, "foundation").opt())
		c.main.st = fnd
		for _, st := range steps[i:j] {
			if err := c.step(ctx, st); err != nil {
				return nil, err
			}
		}
		flush()
		g := group{layer: s.Layer, fnd: fnd, top: c.main.st, diff: bk.Diff(fnd, c.main.st, c.label(s.Layer, "diff").opt()), chain: len(marks) - 1}
		groups = append(groups, g)
		parts = append(parts, g.diff)
		// Back on the chain, as the user the config says is current.
		c.main.st = chain
		if u := c.main.cfg.Config.User; u != "" {
			c.main.st = c.main.st.User(u)
		}
		i = j
	}
	if len(groups) == 0 {
		return nil, nil
	}
	flush()
	end := c.main.st
	// The chain's metadata (env, dir, user) on the merged filesystem.
	c.main.st = end.WithOutput(bk.Merge(parts, c.label("", "merge layers").opt()).Output())
	// What the checks prove equal: the groups after the attached steps
	// they do not see, as these change none of their paths.
	run := []bk.State{end}
	for _, g := range groups {
		run = append(run, g.diff)
	}
	c.run = end.WithOutput(bk.Merge(run, c.label("", "merge for children").opt()).Output())
	return &Check{Image: c.img.Name, State: c.check(groups, marks, end)}, nil
}

// sees reports whether the groups of layer run on those of an earlier
// layer: the same layer, one it depends on, or any for a SeeAll layer.
func (c *compiler) sees(layer, earlier string) bool {
	return layer == earlier || c.opt.SeeAll[layer] || slices.Contains(c.img.AllDepends(layer), earlier)
}

// detaches reports whether s runs detached in this compile.
func (c *compiler) detaches(s plan.Step) bool {
	return s.Detach && !c.opt.Linear
}

// check builds the step that reports conflicting writes, over every path.
//
// What a group wrote is read from its diff (every entry: files, symlinks,
// devices, directories with their mode and owner) and, for deletions a
// mounted diff does not show, from its foundation and result: an entry of a
// directory in the diff that the foundation has and the result lacks (or
// has as another type) was deleted or replaced. A path is a conflict when
//
//   - two groups that do not see each other both have it, and either has it
//     as a non-directory or deleted it, or as a directory they give a
//     different mode or owner that either of them set (created or changed);
//   - a group has it and the attached steps after the group (which did not
//     see it) changed it: compared in the chain where the group ran and at
//     its end, by type, mode, owner, size, mtime and inode (an untouched file
//     is the same inode in both snapshots); for a directory the group set,
//     only if its mode or owner at the end differ from the group's.
//
// The step runs on the chain's start (it needs a shell with find, stat,
// sort, xargs, awk, sed and tr, which Debian, Fedora, Alpine and busybox
// images have; without them it reports the one missing, see
// CheckTools) with those snapshots mounted read-only: all of them exist
// anyway, nothing is materialized for the check. It writes its findings to
// CheckFile in its output; BuildKit caches it with its inputs, so it reruns
// only when a group or the chain changed. Its cache key is those inputs'
// definitions, not their contents: BuildKit would otherwise checksum every
// file of every read-only mount (a distribution's whole tree, each time a
// new snapshot is mounted) before it could look the check up.
func (c *compiler) check(groups []group, marks []bk.State, end bk.State) bk.State {
	lbl := c.label("", "check detached layers")
	opts := []bk.RunOption{lbl.opt(), bk.User("0:0")}
	// mount mounts st once (BuildKit releases a ref mounted twice in one
	// step twice; a group's foundation is often the chain itself) and
	// returns where.
	mounted := map[bk.Output]string{}
	mount := func(name string, st bk.State) string {
		if dir, ok := mounted[st.Output()]; ok && st.Output() != nil {
			return dir
		}
		dir := path.Join(checkDir, name)
		opts = append(opts, bk.AddMount(dir, st, bk.Readonly, bk.ContentCache(bk.MountContentCacheOff)))
		mounted[st.Output()] = dir
		return dir
	}
	var script, pairs strings.Builder
	script.WriteString(checkFuncs)
	for i, g := range groups {
		fmt.Fprintf(&script, "writes %d %s %s %s\n", i, mount(fmt.Sprintf("g%d", i), g.diff), mount(fmt.Sprintf("f%d", i), g.fnd), mount(fmt.Sprintf("t%d", i), g.top))
		fmt.Fprintf(&pairs, "L[%d] = %q; ", i, g.layer)
		if g.chain < len(marks)-1 {
			// Attached steps ran after the group without seeing it.
			fmt.Fprintf(&script, "after %d %s %s %s\n", i, mount(fmt.Sprintf("c%d", g.chain), marks[g.chain]), mount("end", end), g.layer)
		}
		for k := range i { // each unordered pair once
			if c.sees(g.layer, groups[k].layer) {
				continue
			}
			fmt.Fprintf(&pairs, "U[\"%d %d\"] = 1; ", k, i)
		}
	}
	fmt.Fprintf(&script, "sort -t \"$T\" -k1,1 \"$W/r\" | awk -F \"$T\" %s >> \"$O\"\n",
		plan.Quote("BEGIN { "+pairs.String()+"}\n"+checkPairs))
	opts = append(opts, bk.Args([]string{"/bin/sh", "-c", script.String()}))
	run := marks[0].Run(opts...)
	return run.AddMount(checkOut, bk.Scratch())
}

// checkFuncs starts the check script (see check).
//
// writes I DIFF FOUNDATION RESULT lists what group I wrote in $W: dI "mode:uid:gid path" per
// directory, nI the other entries, xI what it deleted or replaced with
// another type; and appends them to $W/r as "path TAB I TAB kind TAB meta",
// kind d (a directory as it was), D (a directory it created or changed), f
// (anything else).
//
// after I CHAIN END LAYER reports the first path group I wrote (a
// non-directory, a deletion, a directory it set) that the attached steps
// between CHAIN and END changed.
const checkFuncs = `export LC_ALL=C
W=` + checkDir + `-w O=` + checkOut + CheckFile + ` T="$(printf '\t')"
mkdir -p "$W" && : > "$O" && : > "$W/r" || exit 1
for t in find stat sort xargs awk sed tr; do
	command -v $t > /dev/null || { echo "! $t" > "$O"; exit 0; }
done
minus() { awk 'FILENAME == ARGV[1] { b[$0] = 1; next } !($0 in b)' "$2" "$1"; }
KIDS='find "$@" -mindepth 1 -maxdepth 1 -type d -exec printf "d %s\n" {} + -o -exec printf "f %s\n" {} +'
kids() { (cd "$1" && tr '\n' '\0' < "$2" | xargs -0 sh -c "$KIDS" sh 2>/dev/null); }
meta() { (cd "$1" && tr '\n' '\0' < "$2" | xargs -0 stat -c '%a:%u:%g %n' 2>/dev/null); }
writes() {
	(cd "$2" && find . -mindepth 1 -type d -exec stat -c '%a:%u:%g %n' {} + > "$W/d$1" &&
		find . -mindepth 1 ! -type d > "$W/n$1") || exit 1
	{ echo .; sed 's/^[^ ]* //' "$W/d$1"; } > "$W/dirs"
	# xargs fails on paths the foundation lacks: not an error here.
	meta "$3" "$W/dirs" > "$W/m"; minus "$W/d$1" "$W/m" > "$W/set"
	kids "$3" "$W/dirs" > "$W/a"; kids "$4" "$W/dirs" > "$W/b"
	minus "$W/a" "$W/b" | sed 's/^. //' > "$W/x$1"
	awk -v i="$1" -v OFS="$T" 'FILENAME == ARGV[1] { set[$0] = 1; next }
		{ m = $1; k = ($0 in set) ? "D" : "d"; sub(/^[^ ]* /, ""); print $0, i, k, m }' "$W/set" "$W/d$1" >> "$W/r"
	awk -v i="$1" -v OFS="$T" '{ print $0, i, "f", "-" }' "$W/n$1" "$W/x$1" >> "$W/r"
}
stats() { (cd "$1" && tr '\n' '\0' < "$W/p" | xargs -0 stat -c "%n$T%a:%u:%g$T%F %s %Y %i" 2>/dev/null) | sed "s/^/$2$T/"; }
after() {
	{ sed 's/^[^ ]* //' "$W/set"; cat "$W/n$1" "$W/x$1"; } > "$W/p"
	{ stats "$2" c; stats "$3" e; sed "s/^/s$T/" "$W/set"; } | awk -F "$T" -v l="$4" '
		$1 == "c" { S[$2] = $3 " " $4; P[$2] = 1; next }
		$1 == "e" { E[$2] = $3 " " $4; M[$2] = $3; P[$2] = 1; next }
		{ m = $2; sub(/ .*/, "", m); p = $2; sub(/^[^ ]* /, "", p); D[p] = m }
		END {
			for (p in P) if (S[p] != E[p] && !((p in D) && (p in M) && M[p] == D[p]) && (best == "" || p < best)) best = p
			if (best != "") print l, "-", substr(best, 2)
		}' >> "$O"
}
`

// checkPairs reports, from the sorted records of writes, the first path
// per pair of layers that do not see each other (U, by group index) where
// they conflict.
const checkPairs = `$1 != p { p = $1; n = 0 }
{
	for (k = 0; k < n; k++) {
		a = G[k]; b = $2 + 0
		key = a < b ? a " " b : b " " a
		if (!(key in U) || (K[k] != "f" && $3 != "f" && (K[k] == "d" && $3 == "d" || M[k] == $4))) continue
		if (!(key in seen)) { seen[key] = 1; print L[a < b ? a : b], L[a < b ? b : a], substr(p, 2) }
	}
	G[n] = $2 + 0; K[n] = $3; M[n] = $4; n++
}`

// Conflict is a path written by a detached layer and by a step that did not
// see it.
type Conflict struct {
	Layer, Other, File string // Other is "" for the attached chain
}

// CheckTools is the check's report on an image that lacks a tool it
// needs: its layers cannot be checked, so they build attached.
type CheckTools struct{ Missing string }

func (e *CheckTools) Error() string {
	return "the detached-layer check needs " + e.Missing + " in the image"
}

// ParseConflicts reads the check step's report.
func ParseConflicts(data []byte) ([]Conflict, error) {
	var out []Conflict
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		if tool, ok := strings.CutPrefix(line, "! "); ok {
			return nil, &CheckTools{Missing: tool}
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("check report: malformed line %q", line)
		}
		c := Conflict{Layer: f[0], Other: f[1], File: f[2]}
		if c.Other == chainLayer {
			c.Other = ""
		}
		out = append(out, c)
	}
	return out, nil
}
