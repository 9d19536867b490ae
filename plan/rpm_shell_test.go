package plan_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"

	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// rpmStep plans an rpm image with one layer of two repositories, one
// without a gpgkey (the key is optional), and returns its package step.
func rpmStep(t *testing.T) plan.Step {
	t.Helper()
	p := family(t)
	p.Images["other"].Pkg = "rpm"
	p.Layers["tools"].Rpm = &spec.Rpm{Packages: []string{"code", "gh"}, Repos: []spec.Repo{
		{Name: "vscode", URL: "https://packages.microsoft.com/yumrepos/vscode/config.repo", GPGKey: "https://packages.microsoft.com/keys/microsoft.asc"},
		{Name: "gh-cli", URL: "https://cli.github.com/packages/rpm/gh-cli.repo"},
	}}
	plans, _ := build(t, p, "other")
	for _, s := range plans[0].Steps {
		if s.Desc == "rpm packages" {
			return s
		}
	}
	t.Fatalf("no rpm step in %+v", plans[0].Steps)
	return plan.Step{}
}

// runShell interprets script as /bin/sh would, with every command faked:
// fail says which commands (by their first two words) exit 1. It returns
// the commands run and the exit status.
func runShell(t *testing.T, script string, fail map[string]bool) ([]string, error) {
	t.Helper()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		t.Fatalf("the step is not POSIX shell: %v\n%s", err, script)
	}
	var ran []string
	r, err := interp.New(interp.StdIO(nil, io.Discard, io.Discard), interp.Env(expand.ListEnviron()),
		interp.ExecHandlers(func(next interp.ExecHandlerFunc) interp.ExecHandlerFunc {
			return func(ctx context.Context, args []string) error {
				cmd := strings.Join(args, " ")
				ran = append(ran, cmd)
				key := args[0]
				if len(args) > 1 {
					key += " " + args[1]
				}
				if fail[key] {
					return interp.ExitStatus(1)
				}
				return nil
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	return ran, r.Run(context.Background(), f)
}

func count(cmds []string, prefix string) int {
	n := 0
	for _, c := range cmds {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// Fedora and dnf5 are out of reach here: the rpm step's shell is run by a
// POSIX shell interpreter (mvdan.cc/sh) with dnf5, rpm and grep faked, on a
// fresh base and on one that already has the repositories and the key.
func TestRpmRepoSetupIdempotentInterpretedNoFedora(t *testing.T) {
	s := rpmStep(t)
	if strings.Count(s.Shell, "rpm --import") != 1 {
		t.Errorf("want one key import (gh-cli has no gpgkey): %s", s.Shell)
	}

	// A fresh base: both repositories are added, disabled, the key imported.
	ran, err := runShell(t, s.Shell, map[string]bool{"grep -Fqsx": true})
	if err != nil {
		t.Fatalf("fresh base: %v\n%q", err, ran)
	}
	if count(ran, "dnf5 config-manager addrepo") != 2 || count(ran, "dnf5 config-manager setopt") != 2 ||
		count(ran, "rpm --import https://packages.microsoft.com/keys/microsoft.asc") != 1 || count(ran, "dnf install") != 1 {
		t.Errorf("fresh base ran %q", ran)
	}

	// The base defines both ids already and rpm refuses the key again: no
	// addrepo (dnf5 refuses an existing id), and the install still runs.
	ran, err = runShell(t, s.Shell, map[string]bool{"rpm --import": true, "dnf5 config-manager": true})
	if err != nil {
		t.Fatalf("base with the repositories and key: %v\n%q", err, ran)
	}
	if count(ran, "dnf5 config-manager") != 0 || count(ran, "dnf install") != 1 {
		t.Errorf("base with the repositories ran %q", ran)
	}
	for _, want := range []string{"grep -Fqsx [vscode] /etc/yum.repos.d/*.repo /etc/distro.repos.d/*.repo",
		"grep -Fqsx [gh-cli] /etc/yum.repos.d/*.repo /etc/distro.repos.d/*.repo"} {
		if count(ran, want) != 1 {
			t.Errorf("no %q in %q", want, ran)
		}
	}

	// A failing install still fails the step.
	if ran, err := runShell(t, s.Shell, map[string]bool{"dnf install": true}); err == nil {
		t.Errorf("a failed dnf install passed: %q", ran)
	}
	// So does a repository that cannot be added.
	if ran, err := runShell(t, s.Shell, map[string]bool{"grep -Fqsx": true, "dnf5 config-manager": true}); err == nil {
		t.Errorf("a failed addrepo passed: %q", ran)
	}
}

// The rpm step removes dnf's logs and ldconfig's aux-cache after the
// install (no Fedora here: interpreted with dnf faked), not after a failed
// one, and never what rpm or dnf read back (the rpmdb, dnf's state and
// history).
func TestRpmLeftoversRemovedInterpretedNoFedora(t *testing.T) {
	s := rpmStep(t)
	ran, err := runShell(t, s.Shell, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := ran[len(ran)-1]
	if !strings.HasPrefix(last, "rm -f ") || !strings.Contains(last, "/var/log/dnf5.log") || !strings.Contains(last, "/var/cache/ldconfig/aux-cache") {
		t.Errorf("the step ends with %q, want the leftovers removed", last)
	}
	for _, keep := range []string{"/var/lib/rpm", "/usr/lib/sysimage", "/var/lib/dnf", "/etc"} {
		if strings.Contains(last, keep) {
			t.Errorf("the step removes %s: %q", keep, last)
		}
	}
	if ran, _ := runShell(t, s.Shell, map[string]bool{"dnf install": true}); count(ran, "rm ") != 0 {
		t.Errorf("a failed install removed files: %q", ran)
	}
}
