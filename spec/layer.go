package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"gopkg.in/yaml.v3"

	"github.com/overthink/ov/installfile"
)

var (
	layerKeys = []string{"depends", "env", "path_append", "ports", "route", "service", "rpm", "deb", "volumes"}
	rpmKeys   = []string{"packages", "copr", "repos", "exclude", "options"}
	repoKeys  = []string{"name", "url", "gpgkey"}
	debKeys   = []string{"packages"}
	routeKeys = []string{"host", "port"}
)

// layerSrc is what validation needs beyond the model: where each depends
// entry was written.
type layerSrc struct {
	file        string // "layers/<name>/layer.yml" or "layers/<name>"
	dependsLine []int
}

// readLayers scans layers/ and reads every layer directory. A missing
// layers/ is an empty library (images that use layers then fail on them).
func (l *loader) readLayers() error {
	entries, err := fs.ReadDir(l.fsys, "layers")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 { // a symlinked layer directory
			fi, err := fs.Stat(l.fsys, "layers/"+e.Name())
			var fe *FileError
			if errors.As(err, &fe) {
				return err
			}
			isDir = err == nil && fi.IsDir()
		}
		if isDir {
			names = append(names, e.Name())
		}
	}
	// Layers are independent: read them on every core, each into its own
	// loader, then merge in directory order, so that the result, the
	// errors and their order are those of reading one after the other.
	// A few long-lived workers, not a goroutine per layer: the YAML
	// parser needs a deep stack, grown once per worker.
	subs := make([]*loader, len(names))
	errs := make([]error, len(names))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(names)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				subs[i] = &loader{fsys: l.fsys, dir: l.dir, layers: map[string]*Layer{}, layerSrc: map[string]*layerSrc{}}
				errs[i] = subs[i].readLayer(names[i])
			}
		})
	}
	wg.Wait()
	for i, sub := range subs {
		if errs[i] != nil {
			return errs[i]
		}
		l.errs.list = append(l.errs.list, sub.errs.list...)
		maps.Copy(l.layers, sub.layers)
		maps.Copy(l.layerSrc, sub.layerSrc)
	}
	return nil
}

func (l *loader) readLayer(name string) error {
	rel := "layers/" + name
	layer := &Layer{Name: name, Dir: path.Join(l.dir, rel), Pos: Pos{File: rel}}
	src := &layerSrc{file: rel}
	if err := CheckName("layer", name); err != nil {
		l.errs.add(Pos{File: rel}, "%v", err)
		return nil // the name is unusable; don't report its contents
	}
	l.layers[name] = layer
	l.layerSrc[name] = src

	// One directory listing answers every "is there a root.yml?" below: a
	// stat per candidate file costs more than the whole parse at scale.
	entries, err := fs.ReadDir(l.fsys, rel)
	if err != nil {
		return fmt.Errorf("reading %s: %w", rel, err)
	}
	dir := layerDir{fsys: l.fsys, rel: rel, entries: make(map[string]fs.DirEntry, len(entries))}
	for _, e := range entries {
		dir.entries[e.Name()] = e
	}
	typ, ok, err := dir.typeOf("layer.yml")
	if err != nil {
		return err
	}
	if ok && !typ.IsRegular() {
		l.errs.add(Pos{File: rel + "/layer.yml"}, "layer.yml must be a regular file")
		return l.detectFiles(layer, dir)
	}
	if ok {
		data, err := fs.ReadFile(l.fsys, rel+"/layer.yml")
		if err != nil {
			return fmt.Errorf("reading %s/layer.yml: %w", rel, err)
		}
		src.file = rel + "/layer.yml"
		layer.Pos = Pos{File: src.file, Line: 1}
		l.parseLayerYAML(layer, src, data)
	}
	return l.detectFiles(layer, dir)
}

// layerDir is a listed layer directory.
type layerDir struct {
	fsys    fs.FS
	rel     string // "layers/<name>"
	entries map[string]fs.DirEntry
}

// typeOf returns the type of the named entry, following a symlink (a
// dangling one is absent); ok is false when there is no such entry.
func (d layerDir) typeOf(name string) (typ fs.FileMode, ok bool, err error) {
	e, found := d.entries[name]
	if !found {
		return 0, false, nil
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return e.Type(), true, nil
	}
	fi, err := fs.Stat(d.fsys, d.rel+"/"+name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading %s/%s: %w", d.rel, name, err)
	}
	return fi.Mode().Type(), true, nil
}

// parseLayerYAML fills layer from layer.yml, reporting every problem.
func (l *loader) parseLayerYAML(layer *Layer, src *layerSrc, data []byte) {
	d := &doc{file: src.file, errs: &l.errs}
	root, _ := d.parse(data)
	if root == nil {
		return
	}
	f := d.mapping(root, "", layerKeys)

	if v, ok := f["depends"]; ok {
		items, _ := list(d, "depends", v.val, d.str)
		seen := map[string]bool{}
		for _, it := range items {
			if seen[it.v] {
				d.errs.add(Pos{d.file, it.line}, "depends: %q is listed twice", clip(it.v))
				continue
			}
			seen[it.v] = true
			layer.Depends = append(layer.Depends, it.v)
			src.dependsLine = append(src.dependsLine, it.line)
		}
	}
	if v, ok := f["env"]; ok {
		layer.Env = l.parseEnv(d, v.val)
	}
	if v, ok := f["path_append"]; ok {
		items, _ := list(d, "path_append", v.val, d.str)
		for _, it := range items {
			if err := checkPathEntry(it.v); err != nil {
				d.errs.add(Pos{d.file, it.line}, "%v", err)
				continue
			}
			layer.PathAppend = append(layer.PathAppend, it.v)
		}
	}
	if v, ok := f["ports"]; ok {
		items, _ := list(d, "ports", v.val, d.integer)
		for _, it := range items {
			if err := CheckPort(it.v); err != nil {
				d.errs.add(Pos{d.file, it.line}, "ports: %v", err)
				continue
			}
			layer.Ports = append(layer.Ports, it.v)
		}
	}
	if v, ok := f["route"]; ok {
		layer.Route = parseRoute(d, v)
	}
	if v, ok := f["service"]; ok {
		if s, ok := d.str("service", v.val); ok {
			if err := CheckService(layer.Name, s); err != nil {
				d.errf(v.val, "%v", err)
			}
			layer.Service = s
		}
	}
	if v, ok := f["rpm"]; ok {
		layer.Rpm = parseRpm(d, v)
	}
	if v, ok := f["volumes"]; ok {
		layer.Volumes = parseVolumes(d, v.val)
	}
	if v, ok := f["deb"]; ok {
		df := d.mapping(v.val, "deb", debKeys)
		layer.Deb = &Deb{}
		if p, ok := df["packages"]; ok {
			layer.Deb.Packages = packages(d, "deb.packages", "package", p.val)
		}
	}
}

func (l *loader) parseEnv(d *doc, n *yaml.Node) map[string]string {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		d.errf(n, "env: expected a mapping of NAME: value, got %s", describe(n))
		return nil
	}
	env := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "env: names must be strings, got %s", describe(k))
			continue
		}
		if err := checkEnvKey(k.Value); err != nil {
			d.errf(k, "%v", err)
			continue
		}
		if _, dup := env[k.Value]; dup {
			d.errf(k, "env: duplicate name %q", k.Value)
			continue
		}
		val, ok := d.str("env "+k.Value, v)
		if !ok {
			continue
		}
		if err := CheckEnvValue(val); err != nil {
			d.errf(v, "env %s: %v", k.Value, err)
			continue
		}
		env[k.Value] = val
	}
	return env
}

func parseRoute(d *doc, v field) *Route {
	rf := d.mapping(v.val, "route", routeKeys)
	if deref(v.val).Kind != yaml.MappingNode {
		return nil
	}
	r := &Route{}
	h, hasHost := rf["host"]
	p, hasPort := rf["port"]
	if !hasHost {
		d.errf(v.key, "route: host is required")
	} else if s, ok := d.str("route.host", h.val); ok {
		if err := CheckHost(s); err != nil {
			d.errf(h.val, "%v", err)
		} else {
			r.Host = s
		}
	}
	if !hasPort {
		d.errf(v.key, "route: port is required")
	} else if n, ok := d.integer("route.port", p.val); ok {
		if err := CheckPort(n); err != nil {
			d.errf(p.val, "route: %v", err)
		} else {
			r.Port = n
		}
	}
	return r
}

// packages reads a list of package-like names, checking each.
func packages(d *doc, name, what string, n *yaml.Node) []string {
	items, _ := list(d, name, n, d.str)
	var out []string
	for _, it := range items {
		if err := checkPackage(what, it.v); err != nil {
			d.errs.add(Pos{d.file, it.line}, "%s: %v", name, err)
			continue
		}
		out = append(out, it.v)
	}
	return out
}

func parseRpm(d *doc, v field) *Rpm {
	rf := d.mapping(v.val, "rpm", rpmKeys)
	r := &Rpm{}
	if p, ok := rf["packages"]; ok {
		r.Packages = packages(d, "rpm.packages", "package", p.val)
	}
	if p, ok := rf["exclude"]; ok {
		items, _ := list(d, "rpm.exclude", p.val, d.str)
		for _, it := range items {
			if err := checkGlob(it.v); err != nil {
				d.errs.add(Pos{d.file, it.line}, "rpm.exclude: %v", err)
				continue
			}
			r.Exclude = append(r.Exclude, it.v)
		}
	}
	if p, ok := rf["options"]; ok {
		items, _ := list(d, "rpm.options", p.val, d.str)
		for _, it := range items {
			if err := checkOption(it.v); err != nil {
				d.errs.add(Pos{d.file, it.line}, "rpm.options: %v", err)
				continue
			}
			r.Options = append(r.Options, it.v)
		}
	}
	if p, ok := rf["copr"]; ok {
		items, _ := list(d, "rpm.copr", p.val, d.str)
		for _, it := range items {
			if err := checkCopr(it.v); err != nil {
				d.errs.add(Pos{d.file, it.line}, "rpm.copr: %v", err)
				continue
			}
			r.Copr = append(r.Copr, it.v)
		}
		if !nonEmptyList(rf["packages"]) {
			d.errf(p.key, "rpm.copr requires rpm.packages (the repositories are only enabled to install them)")
		}
	}
	if p, ok := rf["repos"]; ok {
		r.Repos = parseRepos(d, p.val)
		if !nonEmptyList(rf["packages"]) {
			d.errf(p.key, "rpm.repos requires rpm.packages (the repositories are only enabled to install them)")
		}
	}
	return r
}

func nonEmptyList(f field) bool {
	n := deref(f.val)
	return n != nil && n.Kind == yaml.SequenceNode && len(n.Content) > 0
}

func parseRepos(d *doc, n *yaml.Node) []Repo {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "rpm.repos: expected a list, got %s", describe(n))
		return nil
	}
	var out []Repo
	seen := map[string]bool{}
	for _, e := range n.Content {
		e = deref(e)
		rf := d.mapping(e, "rpm.repos entry", repoKeys)
		if e.Kind != yaml.MappingNode {
			if isNull(e) {
				d.errf(e, "rpm.repos entry: expected a mapping, got null")
			}
			continue
		}
		var repo Repo
		ok := true
		if v, has := rf["name"]; !has {
			d.errf(e, "rpm.repos entry: name is required")
			ok = false
		} else if s, good := d.str("rpm.repos name", v.val); !good {
			ok = false
		} else if err := checkRepoName(s); err != nil {
			d.errf(v.val, "rpm.repos: %v", err)
			ok = false
		} else if seen[s] {
			d.errf(v.val, "rpm.repos: repository %q is listed twice", s)
			ok = false
		} else {
			seen[s] = true
			repo.Name = s
		}
		if v, has := rf["url"]; !has {
			d.errf(e, "rpm.repos entry: url is required")
			ok = false
		} else if s, good := d.str("rpm.repos url", v.val); !good {
			ok = false
		} else if err := checkURL("repository url", s, "http", "https"); err != nil {
			d.errf(v.val, "rpm.repos: %v", err)
			ok = false
		} else {
			repo.URL = s
		}
		if v, has := rf["gpgkey"]; has {
			if s, good := d.str("rpm.repos gpgkey", v.val); !good {
				ok = false
			} else if err := checkURL("gpgkey", s, "http", "https", "file"); err != nil {
				d.errf(v.val, "rpm.repos: %v", err)
				ok = false
			} else {
				repo.GPGKey = s
			}
		}
		if ok {
			out = append(out, repo)
		}
	}
	return out
}

// detectFiles records the layer's install files (installfile.Kinds) and
// checks the rules about them.
func (l *loader) detectFiles(layer *Layer, dir layerDir) error {
	rel := "layers/" + layer.Name
	present := false // a file of some kind, even if it fails a check
	for _, k := range installfile.Kinds {
		var found []string
		for _, name := range k.Files {
			typ, ok, err := dir.typeOf(name)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if !typ.IsRegular() {
				l.errs.add(Pos{File: rel + "/" + name}, "%s must be a regular file", name)
				continue
			}
			found = append(found, name)
		}
		if len(found) == 0 {
			continue
		}
		present = true
		if len(found) > 1 {
			l.errs.add(Pos{File: rel}, "more than one %s manifest (%s): keep only one", k.Name, strings.Join(found, ", "))
		}
		f := installfile.File{Kind: k, Name: found[0]}
		file := rel + "/" + f.Name
		if k.Dir != "" {
			typ, ok, err := dir.typeOf(k.Dir)
			if err != nil {
				return err
			}
			if !ok || !typ.IsDir() {
				l.errs.add(Pos{File: file}, "%s requires a %s/ directory next to it", f.Name, k.Dir)
				continue
			}
		}
		if k.Taskfile {
			if err := l.checkTaskfile(file); err != nil {
				return err
			}
		}
		if k.Read != nil {
			sub, err := fs.Sub(l.fsys, rel)
			if err != nil {
				return err
			}
			if err := k.Read(sub, &f); err != nil {
				l.errs.add(Pos{File: file}, "%v", err)
				continue
			}
		}
		layer.Installs = append(layer.Installs, f)
	}
	hasPackages := (layer.Rpm != nil && len(layer.Rpm.Packages) > 0) || (layer.Deb != nil && len(layer.Deb.Packages) > 0)
	if !hasPackages && !present {
		names := installfile.Names()
		l.errs.add(Pos{File: rel}, "layer has no install file (rpm/deb packages in layer.yml, %s or %s)",
			strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	}
	return nil
}

// checkTaskfile checks that a layer Taskfile parses and has the install task
// the build runs.
func (l *loader) checkTaskfile(file string) error {
	data, err := fs.ReadFile(l.fsys, file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	d := &doc{file: file, errs: &l.errs}
	root, ok := d.parse(data)
	if root == nil {
		if ok { // empty, not a syntax error
			d.errs.add(Pos{File: file}, "empty Taskfile: it needs an install task (tasks: install:)")
		}
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.errf(root, "expected a Taskfile mapping, got %s", describe(root))
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "tasks" {
			continue
		}
		tasks := deref(root.Content[i+1])
		if tasks.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(tasks.Content); j += 2 {
				if tasks.Content[j].Value == "install" {
					return nil
				}
			}
		}
		d.errf(root.Content[i], "no install task (the build runs \"task -t %s install\")", path.Base(file))
		return nil
	}
	d.errs.add(Pos{File: file}, "no install task (the build runs \"task -t %s install\")", path.Base(file))
	return nil
}

// Packages returns the layer's system packages for pkg ("rpm" or "deb").
func (l *Layer) Packages(pkg string) []string {
	switch {
	case pkg == "rpm" && l.Rpm != nil:
		return l.Rpm.Packages
	case pkg == "deb" && l.Deb != nil:
		return l.Deb.Packages
	}
	return nil
}

// Files lists the layer's install files in processing order, for messages
// and listings ("layer.yml" stands for its rpm/deb packages).
func (l *Layer) Files() []string {
	var out []string
	if len(l.Packages("rpm")) > 0 || len(l.Packages("deb")) > 0 {
		out = append(out, "layer.yml")
	}
	for _, f := range l.Installs {
		out = append(out, f.Name)
	}
	return out
}

// Install returns the layer's install file of the named kind
// (installfile.Kind.Name).
func (l *Layer) Install(kind string) (installfile.File, bool) {
	for _, f := range l.Installs {
		if f.Kind.Name == kind {
			return f, true
		}
	}
	return installfile.File{}, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
