package installfile

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/pelletier/go-toml/v2"
	"gopkg.in/yaml.v3"
)

// readPixi notes the pixi.lock next to a pixi.toml or pyproject.toml (an
// environment.yml is imported into a new workspace, which a lock of the
// layer's would not match) and whether the manifest builds from source.
func readPixi(layer fs.FS, f *File) error {
	data, err := fs.ReadFile(layer, f.Name)
	if err != nil {
		return err
	}
	if f.Sources, err = buildsFromSource(f.Name, data); err != nil {
		return err
	}
	if f.Name == "environment.yml" {
		return nil
	}
	fi, err := fs.Stat(layer, "pixi.lock")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return errors.New("pixi.lock must be a regular file")
	}
	f.Lock = "pixi.lock"
	return nil
}

// buildsFromSource says whether the manifest has PyPI dependencies (pixi
// builds sdists with the host's compiler) or git sources.
func buildsFromSource(name string, data []byte) (bool, error) {
	var doc any
	if name == "environment.yml" {
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return false, fmt.Errorf("not a conda environment file: %v", err)
		}
		m, _ := doc.(map[string]any)
		deps, _ := m["dependencies"].([]any)
		for _, d := range deps {
			if pip, ok := d.(map[string]any); ok && pip["pip"] != nil {
				return true, nil
			}
		}
		return false, nil
	}
	if err := toml.Unmarshal(data, &doc); err != nil {
		return false, fmt.Errorf("not a TOML manifest: %v", err)
	}
	if name == "pyproject.toml" {
		// [project] dependencies are PyPI dependencies to pixi.
		if p, ok := doc.(map[string]any)["project"].(map[string]any); ok && nonEmpty(p["dependencies"]) {
			return true, nil
		}
	}
	return hasSourceDeps(doc), nil
}

// hasSourceDeps finds a non-empty pypi-dependencies table (top level, in a
// feature or target) or a dependency with a git source, anywhere.
func hasSourceDeps(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["git"].(string); ok {
			return true
		}
		for k, e := range v {
			if (k == "pypi-dependencies" && nonEmpty(e)) || hasSourceDeps(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasSourceDeps(e) {
				return true
			}
		}
	}
	return false
}

func nonEmpty(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return len(v) > 0
	case []any:
		return len(v) > 0
	}
	return false
}

// pixiShell installs the manifest's default environment in the pixi stage:
// with a lock, exactly the lock (--frozen: the lock is authoritative and
// nothing is solved again; --locked would instead abort when the manifest
// moved on).
func pixiShell(_ string, f File) string {
	frozen := ""
	if f.Lock != "" {
		frozen = " --frozen"
	}
	switch f.Name {
	case "pyproject.toml":
		return "pixi install --manifest-path pyproject.toml" + frozen
	case "environment.yml":
		// `pixi init --import` makes the environment the default one; the
		// spec's `pixi project import` is gone from pixi and imported into
		// a named, non-default environment.
		return "pixi init --import environment.yml && pixi install"
	}
	return "pixi install" + frozen
}

// pixiSetup gives a manifest that builds from source a compiler and git,
// in the pixi stage only (the pixi images are Debian or Ubuntu).
func pixiSetup(f File) string {
	if !f.Sources {
		return ""
	}
	return "apt-get update && apt-get install -y --no-install-recommends build-essential git && rm -rf /var/lib/apt/lists/*"
}
