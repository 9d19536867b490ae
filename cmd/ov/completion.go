package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

	"github.com/overthink/ov/spec"
)

// CompletionCmd prints the shell code that makes a shell complete ov.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c *CompletionCmd) Help() string {
	return `The shell asks ov itself for completions (commands, flags, and the
project's image names and inspect's fields, read from images.yml in the working
directory or in -C DIR). Install:

  bash:  echo 'source <(ov completion bash)' >> ~/.bashrc
  zsh:   echo 'source <(ov completion zsh)' >> ~/.zshrc
  fish:  ov completion fish > ~/.config/fish/completions/ov.fish`
}

// completionScripts register "ov" with each shell; ${bin} is ov's path. The
// shell runs ov with COMP_LINE set, which completeArgs answers.
var completionScripts = map[string]string{
	"bash": "complete -o default -C ${bin} ov\n",
	"zsh":  "autoload -U +X bashcompinit && bashcompinit\ncomplete -o default -C ${bin} ov\n",
	"fish": `function __complete_ov
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    ${bin}
end
complete -f -c ov -a "(__complete_ov)"
`,
}

func (c *CompletionCmd) Run(g *Globals) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("completion: the path of ov: %w", err)
	}
	script := strings.ReplaceAll(completionScripts[c.Shell], "${bin}", shellQuote(bin))
	_, err = fmt.Fprint(g.Stdout, script)
	return err
}

// shellQuote quotes a path for bash, zsh and fish alike.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

// completeArgs answers a shell's completion request (COMP_LINE is set) and
// reports whether it did; ov then exits without running a command.
func completeArgs(parser *kong.Kong) (done bool) {
	if os.Getenv("COMP_LINE") == "" {
		return false
	}
	kongplete.Complete(parser,
		kongplete.WithPredictor("image", projectPredictor(func(p *spec.Project) []string { return p.Names })),
		kongplete.WithPredictor("inspect-field", complete.PredictSet(inspectFields...)),
		kongplete.WithExitFunc(func(int) { done = true }),
		kongplete.WithErrorHandler(func(error) {}),
	)
	return true
}

// projectPredictor predicts names from the project of the command line's
// -C/--dir (or the working directory); nothing when it does not load. The
// whole line is read from COMP_LINE: the Args a predictor gets hold only the
// words after the subcommand.
func projectPredictor(names func(*spec.Project) []string) complete.Predictor {
	return complete.PredictFunc(func(complete.Args) []string {
		p, err := spec.Load(projectDir(strings.Fields(os.Getenv("COMP_LINE"))))
		if err != nil || p == nil {
			return nil
		}
		return names(p)
	})
}

// projectDir finds -C DIR, -CDIR, --dir DIR or --dir=DIR among the words.
func projectDir(words []string) string {
	dir := "."
	for i, w := range words {
		switch {
		case (w == "-C" || w == "--dir") && i+1 < len(words):
			dir = words[i+1]
		case strings.HasPrefix(w, "--dir="):
			dir = strings.TrimPrefix(w, "--dir=")
		case strings.HasPrefix(w, "-C") && len(w) > 2:
			dir = w[2:]
		}
	}
	return dir
}
