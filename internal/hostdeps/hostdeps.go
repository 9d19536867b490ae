// Package hostdeps is the one list of host programs that ov, its tests, the
// demo and the benchmarks run, with the Debian package that provides each.
// The setup task installs from it (go run ./internal/hostdeps/cmd/hostdeps),
// tests look programs up through Need, and a contract test fails when Go code
// or a Taskfile runs a program that is not listed. A program missing from the
// list is then a test failure here, not a fresh machine's surprise.
package hostdeps

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// Program is one host program and where it comes from.
type Program struct {
	Name string // as exec'd: "busybox"
	// Package is the apt package that installs it. Empty for what comes with
	// the machine's Go toolchain or with the repository (ov's own binaries,
	// go tool directives).
	Package string
	Why     string // who runs it
}

// Programs is sorted by Name. Essential Debian packages (coreutils, mount,
// grep, ...) are listed too: a minimal image may still lack them, and the
// list stays complete that way.
var Programs = []Program{
	{"apt-get", "apt", "setup installs packages; testenv downloads busybox-static debs"},
	{"awk", "mawk", "task run:container picks the last tag"},
	{"bash", "bash", "ov completion: bash loads the code and completes"},
	{"buildkitd", "", "built into bin/ by `go tool task setup` from go.mod"},
	{"buildx", "", "built into bin/ by `go tool task setup` from go.mod"},
	{"busybox", "busybox-static", "generate's fetch test: a PATH with wget and no curl"},
	{"chroot", "coreutils", "testenv: update-ca-certificates in the Debian base"},
	{"cmp", "diffutils", "setup: is the buildx plugin current"},
	{"cp", "coreutils", "setup"},
	{"cut", "coreutils", "setup: module versions"},
	{"debootstrap", "debootstrap", "testenv: the Debian base"},
	{"dirname", "coreutils", "setup"},
	{"docker", "docker.io", "ov shell/start/merge/load, tests against dockerd"},
	{"dockerd", "docker.io", "testenv: a private Docker engine"},
	{"dpkg-deb", "dpkg", "testenv: unpack busybox-static debs"},
	{"fish", "fish", "ov completion: fish loads the code and completes"},
	{"git", "git", "ov build/generate: the project's last commit time (SOURCE_DATE_EPOCH)"},
	{"go", "", "the Go toolchain the README asks for"},
	{"grep", "grep", "setup probes"},
	{"id", "coreutils", "bootc tasks: rootful podman"},
	{"ip", "iproute2", "pod tests remove the bridges of their private dockerd"},
	{"iptables", "iptables", "dockerd's networking"},
	{"journalctl", "systemd", "ov pod logs on a host: never run by tests here"},
	{"mkdir", "coreutils", "setup"},
	{"mount", "mount", "setup: binfmt_misc"},
	{"mountpoint", "util-linux", "setup: binfmt_misc"},
	{"mv", "coreutils", "setup"},
	{"newuidmap", "uidmap", "podman's user namespaces"},
	{"nvidia-smi", "nvidia-smi", "ov shell/start/pod --gpu auto probes it on users' hosts (Debian non-free): never required"},
	{"podman", "podman", "ov pod, tests against podman"},
	{"qemu-aarch64-static", "qemu-user-static", "linux/arm64 build steps"},
	{"rootlesskit", "rootlesskit", "the managed buildkitd when not root: optional"},
	{"runc", "runc", "buildkitd's OCI worker"},
	{"sh", "dash", "pod runner tests"},
	{"sleep", "coreutils", "pod runner tests"},
	{"systemctl", "systemd", "ov pod start/stop/status on a host: never run by tests here"},
	{"tar", "tar", "testenv"},
	{"task", "", "go tool task (go.mod tool directive)"},
	{"update-binfmts", "binfmt-support", "setup: register qemu-aarch64"},
	{"yes", "coreutils", "pod runner tests"},
	{"zsh", "zsh", "ov completion: zsh loads the code"},
}

// optional programs are probed or used on users' hosts only; setup does not
// install them and tests never need them.
var optional = []string{"journalctl", "nvidia-smi", "rootlesskit", "systemctl"}

// Lookup returns the listed program called name.
func Lookup(name string) (Program, bool) {
	i := slices.IndexFunc(Programs, func(p Program) bool { return p.Name == name })
	if i < 0 {
		return Program{}, false
	}
	return Programs[i], true
}

// Required reports whether setup must install p.
func (p Program) Required() bool { return p.Package != "" && !slices.Contains(optional, p.Name) }

// Hint says how to get p, for error messages.
func (p Program) Hint() string {
	if p.Package == "" {
		return "from go.mod/the Go toolchain: run `go tool task setup`"
	}
	return fmt.Sprintf("apt %s, installed by `go tool task setup`", p.Package)
}

// sbin are the directories root's PATH has and a user's may lack; setup
// probes (and tests) find daemons like dockerd there.
var sbin = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// Path finds a program on PATH plus the sbin directories.
func Path(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbin {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// Missing returns the apt packages of the required programs this host lacks,
// each once, in list order.
func Missing() []string { return missing(Path) }

func missing(path func(string) (string, error)) []string {
	var pkgs []string
	for _, p := range Programs {
		if !p.Required() || slices.Contains(pkgs, p.Package) {
			continue
		}
		if _, err := path(p.Name); err != nil {
			pkgs = append(pkgs, p.Package)
		}
	}
	return pkgs
}

// Need returns the path of a listed program or fails the test, naming the
// package and the setup task that provide it.
func Need(tb testing.TB, name string) string {
	tb.Helper()
	p, ok := Lookup(name)
	if !ok {
		tb.Fatalf("hostdeps: %q is not in hostdeps.Programs: add it (with its apt package)", name)
	}
	path, err := Path(name)
	if err != nil {
		tb.Fatalf("%s is needed (%s): %v", name, p.Hint(), err)
	}
	return path
}
