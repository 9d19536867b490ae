// Package generate renders build plans for bake users: a Containerfile per
// image, its supervisord fragments and traefik routes, and one
// docker-bake.hcl, written atomically under .build/.
//
// Nothing here decides what an image runs (that is the plan); this package
// only spells it in Dockerfile and HCL syntax, escaping every value so that no
// input can add or change an instruction.
package generate

import (
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/overthink/ov/plan"
)

// Header is the first line of a generated file at rel (".build/...").
func Header(rel string) string { return "# " + rel + " (generated -- do not edit)" }

// ContainerfilePath is the Containerfile of image, relative to the project.
func ContainerfilePath(image string) string { return ".build/" + image + "/Containerfile" }

// Containerfile renders img: its stages, FROM, then its parts in the
// plan's order (plan.Image.Walk).
func Containerfile(img *plan.Image) ([]byte, error) {
	w := &cfWriter{img: img}
	w.line(Header(ContainerfilePath(img.Name)))
	base := img.External
	if img.Parent != "" {
		base = img.ParentRef
	}
	if base == "" {
		return nil, fmt.Errorf("image %q: no base", img.Name)
	}
	w.line("ARG BASE_IMAGE=" + base)

	for _, c := range img.Contexts {
		w.blank()
		w.line("FROM scratch AS " + c.Layer)
		w.line("COPY " + strings.TrimSuffix(c.Rel, "/") + "/ /")
	}
	for _, ps := range img.Pixi {
		w.blank()
		w.line("FROM " + ps.Image + " AS " + ps.Stage)
		w.epochArg()
		if ps.Setup != "" {
			w.line("RUN " + ps.Setup)
		}
		w.line("WORKDIR " + ps.Workdir)
		srcs := make([]string, len(ps.Files))
		for i, f := range ps.Files {
			srcs[i] = "/" + f
		}
		if len(srcs) == 0 {
			srcs = []string{"/" + ps.Manifest}
		}
		w.line("COPY --from=" + ps.Layer + " " + strings.Join(srcs, " ") + " ./")
		w.line("RUN " + ps.Install)
	}
	if img.Routes != nil {
		w.blank()
		w.line("FROM scratch AS " + plan.StageTraefik)
		w.line("COPY " + plan.RoutesPath(img.Name) + " /routes.yml")
	}
	if len(img.Fragments) > 0 {
		w.blank()
		w.line("FROM scratch AS " + plan.StageSupervisord)
		var srcs []string
		for _, f := range img.Fragments {
			srcs = append(srcs, plan.FragmentsDir(img.Name)+"/"+f.Name)
		}
		// Thousands of fragments would not fit one line: a COPY per chunk.
		dst := " " + plan.FragmentsMount + "/"
		for len(srcs) > 0 {
			n, size := 0, len("COPY")+len(dst)
			for n < len(srcs) && (n == 0 || size+1+len(srcs[n]) <= copyLineMax) {
				size += 1 + len(srcs[n])
				n++
			}
			w.line("COPY " + strings.Join(srcs[:n], " ") + dst)
			srcs = srcs[n:]
		}
	}

	w.blank()
	w.line("FROM ${BASE_IMAGE}")
	w.epochArg()
	if err := img.Walk(w); err != nil {
		return nil, err
	}
	if err := checkLines(w.buf.Bytes()); err != nil {
		return nil, fmt.Errorf("image %q: %w", img.Name, err)
	}
	return w.buf.Bytes(), nil
}

// MaxLine is the longest line BuildKit's Dockerfile parser reads (its
// scanner's 64 KiB buffer, newline included).
const MaxLine = 64<<10 - 1

// copyLineMax bounds the COPY lines generate splits: well under MaxLine.
const copyLineMax = 16 << 10

// LineError is a Containerfile line longer than BuildKit reads: the
// project's values or lists make it (exit 1, not an internal error).
type LineError struct {
	Line  int
	Start string // the line's first bytes
	Len   int
}

func (e *LineError) Error() string {
	return fmt.Sprintf("Containerfile line %d (%s...) is %d bytes, more than the %d BuildKit reads: shorten the values or lists that make it", e.Line, e.Start, e.Len, MaxLine)
}

// checkLines refuses a Containerfile with a line BuildKit would not read.
func checkLines(cf []byte) error {
	for n, line := range bytes.Split(cf, []byte("\n")) {
		if len(line) > MaxLine {
			return &LineError{Line: n + 1, Start: string(line[:40]), Len: len(line)}
		}
	}
	return nil
}

type cfWriter struct {
	img  *plan.Image
	buf  bytes.Buffer
	user string // the USER in effect; "" until the file sets one
}

var _ plan.Visitor = (*cfWriter)(nil)

func (w *cfWriter) Bootstrap(s plan.Step) error { return w.step(s) }

func (w *cfWriter) Config(c plan.Config) error {
	if c.Workdir != "" {
		w.line("WORKDIR " + c.Workdir)
	}
	if len(c.Env) > 0 || len(c.PathAppend) > 0 {
		w.blank()
		for _, e := range c.Env {
			w.line("ENV " + e.Key + "=" + EnvQuote(e.Value))
		}
		if len(c.PathAppend) > 0 {
			q := EnvQuote(strings.Join(c.PathAppend, ":"))
			w.line("ENV PATH=" + q[:len(q)-1] + `:${PATH}"`)
		}
	}
	if len(c.Expose) > 0 {
		w.blank()
		for _, p := range c.Expose {
			w.line("EXPOSE " + strconv.Itoa(p))
		}
	}
	return nil
}

// Steps writes the steps under a comment per layer.
func (w *cfWriter) Steps(steps []plan.Step) error {
	layer := "\x00"
	for i, s := range steps {
		if s.Layer != layer {
			w.blank()
			if s.Layer != "" {
				w.line("# Layer: " + s.Layer)
			}
			layer = s.Layer
		}
		if err := w.step(s); err != nil {
			return err
		}
		// USER root after a layer's user steps, for the next layer.
		last := i == len(steps)-1 || steps[i+1].Layer != s.Layer
		if last && s.Layer != "" && w.user != "root" && w.user != "" {
			w.setUser("root")
		}
	}
	return nil
}

func (w *cfWriter) Lint(s plan.Step) error { return w.step(s) }

func (w *cfWriter) User(uid string) error {
	w.blank()
	w.setUser(uid)
	return nil
}

// epochArg declares SOURCE_DATE_EPOCH in a stage: the RUNs after it see
// the build argument when bake passes one (an explicit epoch, see
// plan.Epoch), and nothing otherwise. The value stays out of the file, so
// the Containerfile does not change with it.
func (w *cfWriter) epochArg() {
	if w.img.Epoch != nil {
		w.line("ARG " + plan.EpochEnv)
	}
}

func (w *cfWriter) line(s string) { w.buf.WriteString(s + "\n") }

func (w *cfWriter) blank() {
	if !bytes.HasSuffix(w.buf.Bytes(), []byte("\n\n")) {
		w.buf.WriteString("\n")
	}
}

func (w *cfWriter) setUser(u string) {
	w.line("USER " + u)
	w.user = u
}

func (w *cfWriter) step(s plan.Step) error {
	img := w.img
	switch s.Kind {
	case plan.Copy:
		l := "COPY --from=" + s.From
		if s.Chown != "" {
			l += " --chown=" + s.Chown
		}
		w.line(l + " " + s.Src + " " + s.Dst)
		return nil
	case plan.Run, plan.FetchTask:
	default:
		return fmt.Errorf("image %q: step %q: unknown kind %d", img.Name, s.Desc, s.Kind)
	}
	if s.User != "" && s.User != w.user {
		w.setUser(s.User)
	}
	var flags []string
	for _, m := range s.Mounts {
		f, err := mountFlag(m)
		if err != nil {
			return fmt.Errorf("image %q: step %q: %w", img.Name, s.Desc, err)
		}
		flags = append(flags, f)
	}
	shell := []string{s.Shell}
	if s.Kind == plan.FetchTask {
		shell = fetchTask(img.Task, s.Shell)
	}
	var b strings.Builder
	b.WriteString("RUN ")
	if len(flags) > 0 {
		b.WriteString(strings.Join(flags, " ") + " \\\n    ")
	}
	b.WriteString(strings.Join(shell, " && \\\n    "))
	w.line(b.String())
	return nil
}

// fetchTask downloads the task archive for the running architecture to
// plan.TaskArchive (curl, or wget on bases without curl such as busybox),
// runs the plan's unpack command and removes the archive. The LLB back end
// mounts the archive there instead and runs the same unpack command.
func fetchTask(src plan.TaskSource, unpack string) []string {
	return []string{
		plan.ArchCase,
		"url=" + plan.Quote(strings.TrimSuffix(src.URL, "/")) + `/task_linux_"$arch".tar.gz`,
		`if command -v curl >/dev/null 2>&1; then curl -fsSL -o ` + plan.TaskArchive + ` "$url"; else wget -q -O ` + plan.TaskArchive + ` "$url"; fi`,
		unpack,
		"rm -f " + plan.TaskArchive,
	}
}

// mountFlag spells a mount the way the compat notes show it.
func mountFlag(m plan.Mount) (string, error) {
	if !path.IsAbs(m.Target) || strings.ContainsAny(m.Target, ", \t\"'=") {
		return "", fmt.Errorf("mount target %q cannot be spelled in a --mount flag", m.Target)
	}
	switch m.Kind {
	case plan.Cache:
		f := "--mount=type=cache"
		if m.ID != "" {
			f += ",id=" + m.ID
		}
		f += ",dst=" + m.Target
		if m.Sharing != "" {
			f += ",sharing=" + m.Sharing
		}
		if m.Owned {
			f += ",uid=" + strconv.Itoa(m.UID) + ",gid=" + strconv.Itoa(m.GID)
		}
		return f, nil
	case plan.Bind:
		src := m.Source
		if src == "" {
			src = "/"
		}
		return "--mount=type=bind,from=" + m.From + ",source=" + src + ",target=" + m.Target, nil
	}
	return "", fmt.Errorf("mount %s: unknown kind %d", m.Target, m.Kind)
}

// EnvQuote returns v as a double-quoted Dockerfile word that the frontend
// reads back as exactly v: backslash, double quote and dollar are escaped.
// Newlines cannot be carried (the plan rejects them).
func EnvQuote(v string) string {
	return `"` + envEscaper.Replace(v) + `"`
}

var envEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
