package generate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"mvdan.cc/sh/v3/syntax"
)

// runs lists the shell of each RUN of a stage.
func runs(s instructions.Stage) []string {
	var out []string
	for _, c := range s.Commands {
		if rc, ok := c.(*instructions.RunCommand); ok {
			out = append(out, strings.Join(rc.CmdLine, " "))
		}
	}
	return out
}

// The compatibility corpus (../testdata/compat, goldens in TestGolden)
// read back the way BuildKit's Dockerfile frontend reads it, each RUN
// parsed as POSIX shell. Fedora, dnf5, pixi's image and bootc are out of
// reach here: this is their proof.
func TestCompatCorpusParsesNoFedoraNoPixi(t *testing.T) {
	dir := copyProject(t, "compat")
	generateProject(t, dir)
	read := func(image string) []instructions.Stage {
		b, err := os.ReadFile(filepath.Join(dir, ".build", image, "Containerfile"))
		if err != nil {
			t.Fatal(err)
		}
		stages, _ := parseContainerfile(t, b)
		for _, s := range stages {
			for _, r := range runs(s) {
				if _, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(r), ""); err != nil {
					t.Errorf("%s: RUN is not POSIX shell: %v\n%s", image, err, r)
				}
			}
		}
		return stages
	}

	fedora := read("fedora")
	var pixi, final instructions.Stage
	for _, s := range fedora {
		if s.Name == "ml-env-pixi-build" {
			pixi = s
		}
	}
	final = fedora[len(fedora)-1]
	// PyPI dependencies: a compiler and git in the pixi stage only; the
	// lock is installed exactly.
	if r := runs(pixi); len(r) != 2 || !strings.Contains(r[0], "build-essential git") || r[1] != "pixi install --frozen" {
		t.Errorf("pixi stage runs %q", r)
	}
	for _, r := range runs(final) {
		if strings.Contains(r, "build-essential") {
			t.Errorf("the image installs the pixi stage's compiler: %s", r)
		}
	}
	// A repo without a gpgkey imports no key; the listed CLIs are
	// installed globally by name and range.
	joined := strings.Join(runs(final), "\n")
	if strings.Count(joined, "rpm --import") != 1 || !strings.Contains(joined, "addrepo --from-repofile=https://cli.github.com/packages/rpm/gh-cli.repo") ||
		!strings.Contains(joined, "npm install -g --logs-max=0 @musistudio/claude-code-router@^1.0.0 semver@^7.6.0") {
		t.Errorf("fedora's steps:\n%s", joined)
	}

	// The runner's own user: root steps, home /root, final USER 0.
	runner := read("githubrunner")
	final = runner[len(runner)-1]
	var users []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			users = append(users, c.User)
		case *instructions.WorkdirCommand:
			if c.Path != "/root" {
				t.Errorf("runner WORKDIR %q, want /root", c.Path)
			}
		}
	}
	if strings.Join(users, " ") != "root 0" {
		t.Errorf("runner USERs %q, want root then 0", users)
	}

	// bootc: lint as root before the final USER, which stays the user's.
	bazzite := read("bazzite-ai")
	cmds := bazzite[len(bazzite)-1].Commands
	n := len(cmds)
	lint, ok := cmds[n-2].(*instructions.RunCommand)
	user, ok2 := cmds[n-1].(*instructions.UserCommand)
	if !ok || !ok2 || strings.Join(lint.CmdLine, " ") != "bootc container lint" || user.User != "1000" {
		t.Errorf("bazzite-ai ends with %v", cmds[n-2:])
	}
}
