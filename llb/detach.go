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
// That equals the linear build when a group neither reads nor writes what
// the steps it does not see wrote. Reads are what depends is for. Writes are
// checked after the solve: a check step looks, in every group's diff, for
// the files steps share (package databases, passwd, shell profiles, cargo's
// install records); one written by a group and by a step that did not see
// it is a conflict, and both layers build attached (Options.Attach).

// sharedFiles lists the files steps commonly rewrite whole, relative to /
// (home-relative ones start with "~/").
var sharedFiles = []string{
	"/var/lib/dpkg/status",
	"/var/lib/dpkg/available",
	"/var/lib/rpm/rpmdb.sqlite",
	"/var/lib/rpm/Packages",
	"/usr/lib/sysimage/rpm/rpmdb.sqlite",
	"/usr/lib/sysimage/rpm/Packages",
	"/var/lib/apk/db/installed",
	"/etc/passwd",
	"/etc/group",
	"/etc/shadow",
	"/etc/gshadow",
	"/etc/shells",
	"/etc/ld.so.cache",
	"/etc/environment",
	"/etc/profile",
	"~/.bashrc",
	"~/.profile",
	"~/.bash_profile",
	"~/.npmrc",
	"~/.cargo/.crates.toml",
	"~/.cargo/.crates2.json",
}

// checkDir is where the check step mounts the diffs; checkOut holds its
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
	layer string
	diff  bk.State
	chain int // attached steps run before it
}

// detached compiles steps with detached groups, leaving the merged state in
// c.main. It returns the check state (nil without groups).
func (c *compiler) detached(ctx context.Context, steps []plan.Step) (*bk.State, error) {
	var (
		groups  []group
		marks   []bk.State // chain state after each attached step; marks[0] = c0
		parts   = []bk.State{c.main.st}
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
			if g.layer == s.Layer || slices.Contains(c.img.AllDepends(s.Layer), g.layer) {
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
		g := group{layer: s.Layer, diff: bk.Diff(fnd, c.main.st, c.label(s.Layer, "diff").opt()), chain: len(marks) - 1}
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
	return c.check(groups, marks, end), nil
}

// detaches reports whether s runs detached in this compile.
func (c *compiler) detaches(s plan.Step) bool {
	return s.Detach && !c.opt.Linear
}

// check builds the step that reports conflicting writes of shared files.
// It runs on the chain's start (it needs a shell) with every group's diff
// mounted read-only, and the chain as it stood at each group's place and at
// its end (snapshots that exist anyway: a diff of them would have to be
// made); it writes its findings to CheckFile in its output. BuildKit caches
// it with its inputs.
func (c *compiler) check(groups []group, marks []bk.State, end bk.State) *bk.State {
	home := c.img.User.Home
	files := make([]string, 0, len(sharedFiles))
	for _, f := range sharedFiles {
		if rest, ok := strings.CutPrefix(f, "~/"); ok {
			if home == "" || home == "/" {
				continue
			}
			f = path.Join(home, rest)
		}
		files = append(files, f)
	}

	lbl := c.label("", "check detached layers")
	opts := []bk.RunOption{lbl.opt(), bk.User("0:0")}
	mount := func(name string, st bk.State) string {
		dir := path.Join(checkDir, name)
		opts = append(opts, bk.AddMount(dir, st, bk.Readonly))
		return dir
	}
	var script strings.Builder
	// e: the path exists; sum: what a file holds ("-" when absent), to tell
	// whether the attached steps after a group changed it.
	script.WriteString(`e() { [ -e "$1" ] || [ -L "$1" ]; }; ` +
		`sum() { if e "$1"; then cksum < "$1" 2>/dev/null || echo "?"; else echo -; fi; }; ` +
		`: > ` + checkOut + CheckFile + "\n")
	gdirs := make([]string, len(groups))
	for i, g := range groups {
		gdirs[i] = mount(fmt.Sprintf("g%d", i), g.diff)
	}
	chain := map[int]string{} // marks mounted, by index
	endDir := ""
	for i, g := range groups {
		if n := len(marks) - 1; g.chain < n {
			// Attached steps ran after the group without seeing it.
			if endDir == "" {
				endDir = mount("end", end)
			}
			at, ok := chain[g.chain]
			if !ok {
				at = mount(fmt.Sprintf("c%d", g.chain), marks[g.chain])
				chain[g.chain] = at
			}
			for _, f := range files {
				fmt.Fprintf(&script, "if e %s && [ \"$(sum %s)\" != \"$(sum %s)\" ]; then echo %s >> %s; fi\n",
					plan.Quote(gdirs[i]+f), plan.Quote(at+f), plan.Quote(endDir+f),
					plan.Quote(g.layer+" "+chainLayer+" "+f), checkOut+CheckFile)
			}
		}
		for k := i + 1; k < len(groups); k++ { // each unordered pair once
			h := groups[k]
			if h.layer == g.layer || slices.Contains(c.img.AllDepends(g.layer), h.layer) || slices.Contains(c.img.AllDepends(h.layer), g.layer) {
				continue // the same layer, or one saw the other
			}
			for _, f := range files {
				fmt.Fprintf(&script, "if e %s && e %s; then echo %s >> %s; fi\n",
					plan.Quote(gdirs[i]+f), plan.Quote(gdirs[k]+f),
					plan.Quote(g.layer+" "+h.layer+" "+f), checkOut+CheckFile)
			}
		}
	}
	opts = append(opts, bk.Args([]string{"/bin/sh", "-c", script.String()}))
	run := marks[0].Run(opts...)
	out := run.AddMount(checkOut, bk.Scratch())
	return &out
}

// Conflict is a shared file written by a detached layer and by a step that
// did not see it.
type Conflict struct {
	Layer, Other, File string // Other is "" for the attached chain
}

// ParseConflicts reads the check step's report.
func ParseConflicts(data []byte) ([]Conflict, error) {
	var out []Conflict
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
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
