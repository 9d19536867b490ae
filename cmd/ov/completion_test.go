package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/overthink/ov/internal/hostdeps"
)

func TestProjectDir(t *testing.T) {
	for _, c := range []struct {
		line, want string
	}{
		{"ov build he", "."},
		{"ov -C proj build he", "proj"},
		{"ov -Cproj build", "proj"},
		{"ov --dir proj shell", "proj"},
		{"ov --dir=proj shell", "proj"},
		{"ov -C", "."},
	} {
		if got := projectDir(strings.Fields(c.line)); got != c.want {
			t.Errorf("projectDir(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}

// completionEnv runs this test binary as ov (TestMain) from the shells.
func completionEnv(t *testing.T) []string {
	t.Helper()
	return append(os.Environ(), "OV_TEST_MAIN=1")
}

func shellOut(t *testing.T, shell string, script string) []string {
	t.Helper()
	cmd := exec.Command(hostdeps.Need(t, shell), "-c", script)
	cmd.Env = completionEnv(t)
	cmd.Dir = "../../examples/hello"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -c %q: %v\n%s", shell, script, err, out)
	}
	return strings.Fields(string(out))
}

// TestCompletionBash: bash registers ov with the printed code; the
// registered command, run as bash's completion runs it (COMP_LINE and
// COMP_POINT set; the command, the word and the word before as arguments),
// gives subcommands, image names of the project (also through -C) and enum
// values.
func TestCompletionBash(t *testing.T) {
	register := "source <(\"$0\" -test.run='^$' -- completion bash) && "
	complete := func(line, word string) string {
		return register + `cmd=$(complete -p ov | sed -e "s/^complete -o default -C //" -e "s/ ov$//") && export COMP_LINE=` + shellQuote(line) + ` && export COMP_POINT=${#COMP_LINE} && eval "$cmd ov ` + shellQuote(word) + ` x"`
	}
	bin := os.Args[0]
	for _, c := range []struct {
		line, word string
		want       []string
	}{
		{"ov bu", "bu", []string{"build", "builder"}},
		{"ov build hel", "hel", []string{"hello", "hello-child"}},
		{"ov -C ../.. shell fed", "fed", []string{"fedora", "fedora-test"}},
		{"ov list ", "", []string{"images", "layers", "routes", "services", "targets"}},
		{"ov build --progress pl", "pl", []string{"plain"}},
		{"ov inspect hello --format layers", "layers", []string{"layers", "layers_written"}},
	} {
		got := shellOut(t, "bash", strings.ReplaceAll(complete(c.line, c.word), `"$0"`, shellQuote(bin)))
		slices.Sort(got)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("bash completion of %q: %v lacks %q", c.line, got, w)
			}
		}
	}
}

// TestCompletionFish: fish loads the printed code and completes a line.
func TestCompletionFish(t *testing.T) {
	got := shellOut(t, "fish", "source ("+shellQuote(os.Args[0])+" -test.run='^$' -- completion fish | psub); complete -C 'ov build hel'")
	if !slices.Contains(got, "hello") || !slices.Contains(got, "hello-child") {
		t.Errorf("fish completion of 'ov build hel': %v", got)
	}
}

// TestCompletionZsh: zsh loads the printed code (bashcompinit) and
// registers ov's completion function.
func TestCompletionZsh(t *testing.T) {
	got := shellOut(t, "zsh", "autoload -U compinit && compinit -u && source <("+shellQuote(os.Args[0])+" -test.run='^$' -- completion zsh) && print -r -- ${_comps[ov]}")
	if len(got) == 0 {
		t.Errorf("zsh has no completion for ov after loading the code")
	}
}
