package installfile

import "io/fs"

func readPackageJSON(layer fs.FS, f *File) error { return nil }

// npmShell installs the manifest as a package. `npm install -g <dir>` only
// links to the directory, which is gone after the step: install a packed
// copy.
func npmShell(mount string, f File) string {
	return `tmp="$(mktemp -d)" && npm pack ` + mount + ` --pack-destination "$tmp" && npm install -g "$tmp"/*.tgz && rm -rf "$tmp"`
}
