package installfile

import (
	"errors"
	"io/fs"
)

// readPixi notes the pixi.lock next to a pixi.toml or pyproject.toml (an
// environment.yml is imported into a new workspace, which a lock of the
// layer's would not match).
func readPixi(layer fs.FS, f *File) error {
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

// pixiShell installs the manifest's default environment in the pixi stage.
func pixiShell(_ string, f File) string {
	switch f.Name {
	case "pyproject.toml":
		return "pixi install --manifest-path pyproject.toml"
	case "environment.yml":
		// `pixi init --import` makes the environment the default one; the
		// spec's `pixi project import` is gone from pixi and imported into
		// a named, non-default environment.
		return "pixi init --import environment.yml && pixi install"
	}
	return "pixi install"
}
