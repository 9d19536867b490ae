package hostdeps

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"mvdan.cc/sh/v3/syntax"
)

// repoRoot is the module root, two directories up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// missingOnPurpose is run by a test that checks the error for a program
// that is not there.
const missingOnPurpose = "ov-no-such-tool"

// use is one place a program is run.
type use struct{ prog, where string }

func TestEveryExecdProgramIsListed(t *testing.T) {
	root := repoRoot(t)
	uses := append(goUses(t, root), taskfileUses(t, root)...)
	if len(uses) < 20 {
		t.Fatalf("found only %d program uses: the scanner is broken", len(uses))
	}
	for _, u := range uses {
		if _, ok := Lookup(u.prog); !ok && u.prog != missingOnPurpose {
			t.Errorf("%s runs %q, which hostdeps.Programs does not list (add it with its apt package)", u.where, u.prog)
		}
	}
}

// TestScannerFindsKnownUses keeps the scanners honest: uses through exec
// directly, through a wrapper (a method taking an argv too), and from a
// Taskfile are all seen.
func TestScannerFindsKnownUses(t *testing.T) {
	root := repoRoot(t)
	seen := map[string]bool{}
	for _, u := range append(goUses(t, root), taskfileUses(t, root)...) {
		seen[u.prog] = true
	}
	for _, p := range []string{"debootstrap", "docker", "busybox", "apt-get", "update-binfmts", "go", "nvidia-smi"} {
		if !seen[p] {
			t.Errorf("scanners did not find %q", p)
		}
	}
}

func TestProgramsSortedAndUnique(t *testing.T) {
	if !slices.IsSortedFunc(Programs, func(a, b Program) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Programs is not sorted by Name")
	}
	for i := 1; i < len(Programs); i++ {
		if Programs[i].Name == Programs[i-1].Name {
			t.Errorf("%q listed twice", Programs[i].Name)
		}
	}
	for _, name := range optional {
		if _, ok := Lookup(name); !ok {
			t.Errorf("optional %q is not in Programs", name)
		}
	}
}

// TestRequiredProgramsInstalled is the contract on this host: after `go tool
// task setup`, nothing required is missing.
func TestRequiredProgramsInstalled(t *testing.T) {
	if m := Missing(); len(m) > 0 {
		t.Fatalf("setup left packages missing: %v (run `go tool task setup`)", m)
	}
}

// execArg is the index of the program argument of os/exec's functions.
var execArg = map[string]int{"Command": 0, "CommandContext": 1, "LookPath": 0}

// goUses finds string literals passed as the program to os/exec, and to any
// function of the repository that passes one of its parameters on as the
// program (a wrapper such as testenv's run or hostdeps.Need), to a fixpoint.
func goUses(t *testing.T, root string) []use {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// wrappers: callee key (see calleeKeys) -> index of the parameter that
	// is a program.
	wrappers := map[string]int{}
	for changed := true; changed; {
		changed = false
		for _, f := range files {
			dir, pkg := filepath.Dir(fset.Position(f.Pos()).Filename), strings.TrimSuffix(f.Name.Name, "_test")
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				params := paramNames(fn.Type)
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					i, ok := progIndex(call, dir, wrappers)
					if !ok || i >= len(call.Args) {
						return true
					}
					pi := slices.Index(params, paramOf(call.Args[i]))
					if pi < 0 {
						return true
					}
					keys := []string{dir + "\x00" + fn.Name.Name, pkg + "." + fn.Name.Name}
					if fn.Recv != nil { // a method: called through any value
						keys = []string{"method." + fn.Name.Name}
					}
					for _, k := range keys {
						if _, known := wrappers[k]; !known {
							wrappers[k] = pi
							changed = true
						}
					}
					return true
				})
			}
		}
	}
	var uses []use
	for _, f := range files {
		dir := filepath.Dir(fset.Position(f.Pos()).Filename)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			i, ok := progIndex(call, dir, wrappers)
			if !ok || i >= len(call.Args) {
				return true
			}
			lit := programLit(call.Args[i])
			if lit == nil {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || strings.Contains(s, "/") { // a path is a file, not a host program
				return true
			}
			rel, _ := filepath.Rel(root, fset.Position(lit.Pos()).Filename)
			uses = append(uses, use{s, rel + ":" + strconv.Itoa(fset.Position(lit.Pos()).Line)})
			return true
		})
	}
	return uses
}

// progIndex says which argument of call is a program, if call is os/exec's or
// a known wrapper's. Wrappers are keyed "dir\x00name" for calls within their
// package and "pkg.name" for calls from others, so same-named helpers of
// different packages stay apart; methods "method.name", whatever the value.
func progIndex(call *ast.CallExpr, dir string, wrappers map[string]int) (int, bool) {
	var key string
	switch fn := call.Fun.(type) {
	case *ast.SelectorExpr:
		x, ok := fn.X.(*ast.Ident)
		if ok && x.Name == "exec" {
			i, ok := execArg[fn.Sel.Name]
			return i, ok
		}
		if ok {
			if i, ok := wrappers[x.Name+"."+fn.Sel.Name]; ok {
				return i, true
			}
		}
		key = "method." + fn.Sel.Name
	case *ast.Ident:
		key = dir + "\x00" + fn.Name
	default:
		return 0, false
	}
	i, ok := wrappers[key]
	return i, ok
}

// programLit is the program of an argument: a string literal, or the first
// element of a []string{...} argv.
func programLit(e ast.Expr) *ast.BasicLit {
	if c, ok := e.(*ast.CompositeLit); ok && len(c.Elts) > 0 {
		e = c.Elts[0]
	}
	if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
		return lit
	}
	return nil
}

// paramOf names the parameter an argument passes on: `name`, or `argv[0]`
// for a variadic argv.
func paramOf(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.IndexExpr:
		if lit, ok := e.Index.(*ast.BasicLit); ok && lit.Value == "0" {
			if id, ok := e.X.(*ast.Ident); ok {
				return id.Name
			}
		}
	}
	return ""
}

func paramNames(ft *ast.FuncType) []string {
	var names []string
	for _, f := range ft.Params.List {
		if len(f.Names) == 0 {
			names = append(names, "")
		}
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
	}
	return names
}

// template matches Task's {{...}} expressions; a command named by one is ov's
// own binary (or another variable), not a host program.
var template = regexp.MustCompile(`\{\{[^}]*\}\}`)

// shellBuiltins run without any program.
var shellBuiltins = []string{"cd", "echo", "exit", "printf", "test", "[", "true", "false", "command", "set", "export", "read"}

// taskfileUses finds the commands that Taskfiles run: every cmd, status,
// precondition and sh: string, parsed as shell.
func taskfileUses(t *testing.T, root string) []use {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(root, "taskfiles", "*.yml"))
	paths = append(paths, filepath.Join(root, "Taskfile.yml"))
	var uses []use
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rel, _ := filepath.Rel(root, path)
		for _, s := range shellStrings(&doc, "") {
			script := template.ReplaceAllString(s.Value, "TEMPLATE")
			f, err := syntax.NewParser().Parse(strings.NewReader(script), rel)
			if err != nil {
				t.Fatalf("%s:%d: %v", rel, s.Line, err)
			}
			syntax.Walk(f, func(n syntax.Node) bool {
				call, ok := n.(*syntax.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				name := call.Args[0].Lit()
				if name == "" || strings.Contains(name, "TEMPLATE") || strings.Contains(name, "/") || slices.Contains(shellBuiltins, name) {
					return true
				}
				uses = append(uses, use{name, rel + ":" + strconv.Itoa(s.Line)})
				return true
			})
		}
	}
	return uses
}

// shellStrings returns the scalar nodes that Task runs as shell: items of
// cmds/status/preconditions lists, and the values of cmd: and sh: keys.
func shellStrings(n *yaml.Node, key string) []*yaml.Node {
	var out []*yaml.Node
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			out = append(out, shellStrings(c, "")...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			if v.Kind == yaml.ScalarNode && (k == "cmd" || k == "sh") {
				out = append(out, v)
				continue
			}
			out = append(out, shellStrings(v, k)...)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode && (key == "cmds" || key == "status" || key == "preconditions") {
				out = append(out, c)
				continue
			}
			out = append(out, shellStrings(c, key)...)
		}
	}
	return out
}

// indirect programs are run by other programs (buildkitd, dockerd, podman,
// the kernel's binfmt_misc, ov pod's argv builders), not by a literal in ov
// or its tests: listed so that setup installs them.
var indirect = []string{"iptables", "journalctl", "newuidmap", "qemu-aarch64-static", "runc", "systemctl"}

// TestEveryListedProgramIsUsed keeps the list exact: a program nothing runs
// any more leaves it.
func TestEveryListedProgramIsUsed(t *testing.T) {
	root := repoRoot(t)
	seen := map[string]bool{}
	for _, u := range append(goUses(t, root), taskfileUses(t, root)...) {
		seen[u.prog] = true
	}
	for _, p := range Programs {
		if !seen[p.Name] && !slices.Contains(indirect, p.Name) {
			t.Errorf("%q is listed but nothing runs it: remove it, or list it in indirect with the reason", p.Name)
		}
	}
}

// TestSetupIsUpToDate: after `go tool task setup` (which the test command
// runs first), every setup task that can tell says it has nothing to do, so
// running setup again does nothing.
func TestSetupIsUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("checks this host's setup: not run with -short")
	}
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "taskfiles", "Setup.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tasks map[string]struct {
			Status  []string `yaml:"status"`
			Sources []string `yaml:"sources"`
		} `yaml:"tasks"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var checked []string
	for name, task := range f.Tasks {
		if len(task.Status) > 0 || len(task.Sources) > 0 {
			checked = append(checked, "setup:"+name)
		}
	}
	slices.Sort(checked)
	if len(checked) < 4 {
		t.Fatalf("only %v have status:/sources: in Setup.yml", checked)
	}
	cmd := exec.Command("go", append([]string{"tool", "task", "--status"}, checked...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go tool task --status %v: %v\n%s\nsetup would do work again", checked, err, out)
	}
}
