// Package spec reads an ov project (images.yml and layers/), validates it, and
// resolves it into the model every back end reads: images with inherited
// settings and ordered layers, and layers with their detected install files.
package spec

import "github.com/overthink/ov/installfile"

// Pos points at the source of a value, for file:line errors. File is relative
// to the project directory (e.g. "images.yml", "layers/rust/layer.yml").
type Pos struct {
	File string
	Line int
}

// Project is a loaded, validated, resolved project.
type Project struct {
	Dir    string            // absolute project directory
	Images map[string]*Image // every image in images.yml, enabled or not
	Layers map[string]*Layer // every directory under layers/
	// Order lists the enabled images, parents before children, otherwise in
	// images.yml order.
	Order []string
	// Names lists every image, enabled or not, in images.yml order.
	Names []string
}

// Image is an images.yml entry with every inheritable field resolved through
// image -> defaults -> fallback.
type Image struct {
	Name      string
	Pos       Pos
	Enabled   bool
	Base      string // as resolved: an external reference or another image's name
	Parent    string // Base when it names an image in images.yml, else ""
	Bootc     bool
	Platforms []string // a child inherits its parent's unless it narrows them
	Tag       string   // "auto", "nightly", "1.2.3", ...
	Registry  string   // "" or a prefix like "ghcr.io/atrawog"
	Pkg       string   // "rpm" or "deb"; a child inherits its parent's unless set
	Layers    []string // as written in images.yml (not inherited)
	Ports     []string // "port" or "host:container"
	User      string   // a child inherits its parent's user, uid and gid unless set
	UID, GID  int      // 0 is a real value
	Merge     *Merge   // nil when unset

	// Install is the resolved install order of this image's own layers:
	// transitive depends, topologically sorted, respecting written order,
	// without layers a parent image (via the base chain) already installs.
	// Also computed for disabled images, which are not validated.
	Install []string
}

// Merge holds layer-merge settings.
type Merge struct {
	Auto  bool
	MaxMB int
}

// Layer is a directory under layers/ with its layer.yml and detected files.
type Layer struct {
	Name string
	Dir  string // absolute path of layers/<name>
	Pos  Pos    // layers/<name>/layer.yml line 1; "layers/<name>", line 0, without layer.yml

	Depends    []string
	Env        map[string]string
	PathAppend []string
	Ports      []int
	Route      *Route
	Service    string
	Rpm        *Rpm
	Deb        *Deb
	Volumes    []Volume

	// Installs are the layer's install files (root.yml, a pixi manifest,
	// package.json, ...), in processing order (installfile.Kinds).
	Installs []installfile.File
}

// Route is a traefik route: host name to backend port.
type Route struct {
	Host string
	Port int
}

// Rpm is layer.yml's rpm section.
type Rpm struct {
	Packages []string
	Copr     []string
	Repos    []Repo
	Exclude  []string
	Options  []string
}

// Repo is an external rpm repository.
type Repo struct {
	Name   string
	URL    string
	GPGKey string
}

// Deb is layer.yml's deb section.
type Deb struct {
	Packages []string
}

// User is the account non-root steps run as, resolved for an image.
type User struct {
	Name string
	UID  int
	GID  int
	Home string
}

// WithDefaultHome is u with the home the bootstrap gives an account it
// creates: /home/<name>, /root for UID 0.
func (u User) WithDefaultHome() User {
	u.Home = "/home/" + u.Name
	if u.UID == 0 {
		u.Home = "/root"
	}
	return u
}
