package plan

import (
	"strings"
	"testing"

	"github.com/overthink/ov/spec"
)

// iniLine is one line of a supervisord config as Python's configparser
// (supervisord's reader) takes it: the section it lands in, and whether it
// continues the previous option's value.
type iniLine struct {
	section   string
	continues int  // the line (index) of the option this line continues, or -1
	blank     bool // empty or a comment
}

// readINI models configparser over s: universal newlines ("\n", "\r\n" or
// a lone "\r" end a line), ';' and '#' comment lines, an indented line
// after an option continues its value, "[name]" opens a section.
func readINI(s string) []iniLine {
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n"), "\n")
	out := make([]iniLine, len(lines))
	section, option, indent := "", -1, 0
	for i, l := range lines {
		t := strings.TrimSpace(l)
		out[i].section, out[i].continues = section, -1
		if t == "" || t[0] == ';' || t[0] == '#' {
			out[i].blank = true
			continue
		}
		cur := len(l) - len(strings.TrimLeft(l, " \t"))
		if option >= 0 && cur > indent {
			out[i].continues = option
			continue
		}
		indent = cur
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section, option = t[1:len(t)-1], -1
			out[i].section = section
			continue
		}
		option = i
	}
	return out
}

// FuzzSupervisordFragment: for any service text spec accepts, in the
// assembled supervisord.conf (header, the fragment, another layer's
// fragment) no line of the fragment continues a value or lands in a
// section from before it, and the next fragment's program stays intact.
func FuzzSupervisordFragment(f *testing.F) {
	for _, s := range []string{"[program:a]\ncommand=a\n", "; c\n[program:a]\ncommand=a", "command=x\n[program:a]", "[program:a]\rcommand=x", "  [x]\nk=v\n", "[program:a]\n  more\n", "\n\n[a]", "[a]\ncommand=a \\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		frag, err := fragment(&spec.Layer{Name: "a", Service: text, Pos: spec.Pos{File: "layers/a/layer.yml"}})
		if err != nil {
			return
		}
		header := string(withHeader(".build/x/fragments/00-header.conf", "; ", defaultHeader))
		body := string(withHeader(".build/x/fragments/01-a.conf", "; ", frag))
		next := string(withHeader(".build/x/fragments/02-b.conf", "; ", "[program:b]\ncommand=b\n"))
		lines := readINI(header + body + next)
		from := strings.Count(header, "\n")
		to := from + strings.Count(body, "\n")
		for i := from; i < to; i++ {
			if l := lines[i]; !l.blank && (l.continues >= 0 && l.continues < from || l.section == "supervisord") {
				t.Fatalf("service %q: line %d of the assembled config lands in the header's section or continues its value", text, i+1)
			}
		}
		if l := lines[to+2]; l.section != "program:b" || l.continues >= 0 {
			t.Fatalf("service %q: the next fragment's command lands in %+v", text, l)
		}
	})
}
