package installfile

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// npmName is a package name the npm registry accepts (scoped or not) that
// does not start with "-" (npm would read it as an option).
var npmName = regexp.MustCompile(`^(@[a-z0-9~][a-z0-9._~-]*/)?[a-z0-9~][a-z0-9._~-]*$`)

// readPackageJSON tells a manifest that only lists the tools a layer wants
// (its dependencies, installed globally so their bins land in the npm
// prefix's bin) from one that is itself a package (it has a bin, main or
// files, or JavaScript of its own next to it), which is packed and
// installed.
func readPackageJSON(layer fs.FS, f *File) error {
	data, err := fs.ReadFile(layer, f.Name)
	if err != nil {
		return err
	}
	var m struct {
		Bin          json.RawMessage   `json:"bin"`
		Main         json.RawMessage   `json:"main"`
		Files        json.RawMessage   `json:"files"`
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("not a package.json: %v", err)
	}
	if m.Bin != nil || m.Main != nil || m.Files != nil || len(m.Dependencies) == 0 {
		return nil
	}
	entries, err := fs.ReadDir(layer, ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		switch n := e.Name(); {
		case e.IsDir() && (n == "bin" || n == "lib"),
			!e.IsDir() && slices.Contains([]string{".js", ".mjs", ".cjs"}, path.Ext(n)):
			return nil
		}
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range m.Dependencies {
			if !yield(n) {
				return
			}
		}
	}) {
		v := m.Dependencies[name]
		if !npmName.MatchString(name) || len(name) > 214 {
			return fmt.Errorf("dependencies: %q is not an npm package name", name)
		}
		if v == "" {
			v = "*"
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) || strings.HasPrefix(v, "-") {
			return fmt.Errorf("dependencies: %s: version %q is not a version range", name, v)
		}
		f.Deps = append(f.Deps, name+"@"+v)
	}
	return nil
}

// npmShell installs the listed tools globally, or else the manifest as a
// package. `npm install -g <dir>` only links to the directory, which is
// gone after the step: a package is installed from a packed copy. npm
// writes no debug log (--logs-max=0): one under the npm cache, named by
// time, would land in the image when the cache is not the step's mount.
func npmShell(mount string, f File) string {
	if len(f.Deps) > 0 {
		q := make([]string, len(f.Deps))
		for i, d := range f.Deps {
			q[i], _ = syntax.Quote(d, syntax.LangPOSIX) // Read rejected what it cannot quote
		}
		return "npm install -g --logs-max=0 " + strings.Join(q, " ")
	}
	return `tmp="$(mktemp -d)" && npm pack --logs-max=0 ` + mount + ` --pack-destination "$tmp" && npm install -g --logs-max=0 "$tmp"/*.tgz && rm -rf "$tmp"`
}
