// Package pod runs built images on a host: `ov shell`, `ov start`/`ov stop`
// (docker or podman), and `ov pod` (podman quadlets run as systemd user
// services).
//
// Everything that decides what to run is pure and returns argv or file text
// (argv.go, quadlet.go); Host (host.go) sequences those through an
// engine.Runner, so tests can record every external call.
//
// The CLI's whole use of the package:
//
//	eng := flagOrConfig // "" lets the host decide
//	if eng == "" {
//		eng, err = engine.Detect(exec.LookPath)
//	} else {
//		err = engine.Check(eng)
//	}
//	ws, err := pod.Workspace(flagW) // "" is the current directory
//	img.GPU, err = pod.WantGPU(ctx, flagGPU, pod.HostGPU()) // auto, on, off
//	h := pod.NewHost(eng)
//	code, err := h.Shell(ctx, img, ws, flagC) // exit with code
//	err = h.Start(ctx, img, ws); err = h.Stop(ctx, name)
//	err = h.Install(ctx, img, ws); err = h.Update(ctx, img); err = h.Uninstall(ctx, name)
//	err = h.ServiceStart(ctx, name); err = h.ServiceStop(ctx, name)
//	code, err = h.Status(ctx, name); code, err = h.Logs(ctx, name, follow)
package pod

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/google/go-containerregistry/pkg/name"
)

// Image is what pod needs to know about one images.yml image.
type Image struct {
	Name  string   // images.yml name, e.g. "fedora-test"
	Ref   string   // full image reference to run, e.g. "ghcr.io/x/fedora-test:latest"
	UID   int      // numeric user for `ov shell` (0 is a real value: root)
	GID   int      // numeric group for `ov shell`
	Ports []string // "8080" or "8000:9000" as written in images.yml
	// Volumes are mounted as named volumes ov-<image>-<name>, created by
	// the engine on first use and kept across containers.
	Volumes []Volume
	// GPU passes the host's NVIDIA GPUs through (see WantGPU).
	GPU bool
}

// Volume is a named volume and where it is mounted in the container.
type Volume struct {
	Name string // as in layer.yml: "models"
	Path string // absolute, ~ and $HOME expanded
}

// VolumeName is the engine's name of image's volume name.
func VolumeName(image, name string) string { return ContainerName(image) + "-" + name }

// volumeSpec is the -v / Volume= value of v for image: "ov-<image>-<name>:<path>".
func volumeSpec(image string, v Volume) string { return VolumeName(image, v.Name) + ":" + v.Path }

// ContainerName is the name of the container `ov start` and the quadlet run.
func ContainerName(image string) string { return "ov-" + image }

// ServiceName is the systemd user unit quadlet generates for image.
func ServiceName(image string) string { return ContainerName(image) + ".service" }

// QuadletFileName is the quadlet file `ov pod install` writes for image.
func QuadletFileName(image string) string { return ContainerName(image) + ".container" }

// Container names as docker accepts them; also safe as systemd unit names.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidateName checks an image name before it becomes part of a container
// name, a unit name and a file name.
func ValidateName(image string) error {
	if !nameRE.MatchString(image) || len(image) > 200 {
		return fmt.Errorf("image name %q: want letters, digits, '_', '.', '-' (starting with a letter or digit)", image)
	}
	return nil
}

// Validate checks every field of img that reaches a command line or a
// unit file. The callers validate images.yml already; this is the second
// line of defence against values that would change what is run.
func (img Image) Validate() error {
	if err := ValidateName(img.Name); err != nil {
		return err
	}
	if err := validateRef(img.Ref); err != nil {
		return fmt.Errorf("image %q: %w", img.Name, err)
	}
	if img.UID < 0 || img.GID < 0 {
		return fmt.Errorf("image %q: uid/gid %d:%d must not be negative", img.Name, img.UID, img.GID)
	}
	for _, p := range img.Ports {
		if _, err := PublishSpec(p); err != nil {
			return fmt.Errorf("image %q: %w", img.Name, err)
		}
	}
	if err := checkVolumes(img); err != nil {
		return fmt.Errorf("image %q: %w", img.Name, err)
	}
	return nil
}

// checkVolumes checks that each volume has a usable name and a plain
// absolute path (no ':' or ',', which split mount options) that no other
// mount uses.
func checkVolumes(img Image) error {
	names, paths := map[string]bool{}, map[string]string{"/workspace": "the workspace"}
	for _, v := range img.Volumes {
		if err := ValidateName(VolumeName(img.Name, v.Name)); err != nil || strings.Contains(v.Name, ":") {
			return fmt.Errorf("volume name %q: want letters, digits, '_', '.', '-'", v.Name)
		}
		if names[v.Name] {
			return fmt.Errorf("volume %q is listed twice", v.Name)
		}
		names[v.Name] = true
		if err := noControl("volume path", v.Path); err != nil {
			return err
		}
		clean := filepath.Clean(v.Path)
		if !filepath.IsAbs(v.Path) || strings.ContainsAny(v.Path, ":,") || clean == "/" {
			return fmt.Errorf("volume %q: path %q must be absolute, not /, and without ':' or ','", v.Name, v.Path)
		}
		if other, dup := paths[clean]; dup {
			return fmt.Errorf("volume %q: path %s is already mounted by %s", v.Name, clean, other)
		}
		paths[clean] = fmt.Sprintf("volume %q", v.Name)
	}
	return nil
}

func validateRef(ref string) error {
	if err := noControl("image reference", ref); err != nil {
		return err
	}
	if ref == "" || strings.HasPrefix(ref, "-") {
		return fmt.Errorf("image reference %q is not a valid reference", ref)
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	return nil
}

// PublishSpec turns an images.yml port ("8080" or "8000:9000") into a
// publish spec bound to loopback only: "127.0.0.1:8080:8080".
func PublishSpec(port string) (string, error) {
	host, ctr, found := strings.Cut(port, ":")
	if !found {
		ctr = host
	}
	if !validPort(host) || !validPort(ctr) {
		return "", fmt.Errorf("port %q: want \"PORT\" or \"HOST:CONTAINER\" with ports 1-65535", port)
	}
	return "127.0.0.1:" + host + ":" + ctr, nil
}

func validPort(s string) bool {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" || s[0] == '0' {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535
}

// checkWorkspace validates a host path that is bind-mounted at /workspace.
func checkWorkspace(ws string) error {
	if err := noControl("workspace path", ws); err != nil {
		return err
	}
	if !filepath.IsAbs(ws) {
		return fmt.Errorf("workspace path %q is not absolute", ws)
	}
	// Both `-v src:dst` and quadlet's Volume= split on ':'.
	if strings.Contains(ws, ":") {
		return fmt.Errorf("workspace path %q contains ':', which a volume mount cannot express: use a path without ':'", ws)
	}
	return nil
}

// noControl rejects values that could end a line (or otherwise change
// meaning) in a unit file or a terminal.
func noControl(what, s string) error {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("%s %q contains a control character (newline, tab, ...)", what, s)
		}
	}
	return nil
}
