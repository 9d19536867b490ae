package hostdeps

import (
	"os/exec"
	"slices"
	"testing"
)

func TestMissingOnABareHost(t *testing.T) {
	none := func(string) (string, error) { return "", exec.ErrNotFound }
	got := missing(none)
	for _, want := range []string{"busybox-static", "docker.io", "podman", "runc", "debootstrap", "qemu-user-static", "uidmap", "iptables"} {
		if !slices.Contains(got, want) {
			t.Errorf("a bare host misses %q, Missing gave %v", want, got)
		}
	}
	if i := slices.Index(got, "coreutils"); i < 0 || slices.Index(got[i+1:], "coreutils") >= 0 {
		t.Errorf("coreutils should be listed once: %v", got)
	}
	for _, notApt := range []string{"", "systemd", "rootlesskit"} {
		if slices.Contains(got, notApt) {
			t.Errorf("%q is not for setup to install: %v", notApt, got)
		}
	}
	all := func(name string) (string, error) { return "/bin/" + name, nil }
	if got := missing(all); len(got) != 0 {
		t.Errorf("nothing is missing on a full host, got %v", got)
	}
}

func TestNeedNamesThePackage(t *testing.T) {
	p, _ := Lookup("busybox")
	if got := p.Hint(); got != "apt busybox-static, installed by `go tool task setup`" {
		t.Errorf("hint = %q", got)
	}
}
