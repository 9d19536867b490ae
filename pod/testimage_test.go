package pod

// The e2e image: no registry is reachable, so it is made from Debian
// packages. debootstrap (minbase + supervisor + python3) runs once and the
// root filesystem is cached as a tarball in ~/.cache/ov-pod-test; each run
// imports it into its fresh dockerd.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

const (
	testImageRef = "ghcr.io/ovtest/supervisor:e2e" // never pulled: only in the private stores
	testUID      = 1000
	testGID      = 1000
	servicePort  = "8000" // where the image's supervisord runs the HTTP server
)

// Bump the version when the contents below change.
const rootfsName = "bookworm-supervisor-v1.tar"

var extraFiles = map[string]string{
	// supervisord runs as the image's USER (uid 1000): everything it
	// writes goes to /tmp.
	"etc/supervisord.conf": `[supervisord]
nodaemon=true
logfile=/tmp/supervisord.log
pidfile=/tmp/supervisord.pid

[program:http]
command=python3 -m http.server ` + servicePort + ` --bind 0.0.0.0 --directory /workspace
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
redirect_stderr=true
`,
}

// testImage imports the cached root filesystem into the private dockerd
// as testImageRef, building the cache first if needed.
func testImage(t *testing.T) Image {
	t.Helper()
	needEnv(t)
	tarball, err := rootfsTarball()
	if err != nil {
		t.Fatal(err)
	}
	run(t, "docker", "import",
		"--change", fmt.Sprintf("USER %d:%d", testUID, testGID),
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		tarball, testImageRef)
	return Image{Name: "pod-e2e", Ref: testImageRef, UID: testUID, GID: testGID}
}

func rootfsTarball() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	cache = filepath.Join(cache, "ov-pod-test")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	tarball := filepath.Join(cache, rootfsName)
	// Another test process may be building it: wait for its lock.
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(tarball); err == nil {
		return tarball, nil
	}

	root, err := os.MkdirTemp(cache, "rootfs-")
	if err != nil {
		return "", err
	}
	defer func() { unmountBelow(root); os.RemoveAll(root) }()
	mirror := os.Getenv("OV_TEST_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	if out, err := exec.Command("debootstrap", "--variant=minbase", "--include=supervisor,python3",
		"bookworm", root, mirror).CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap (apt install debootstrap): %v\n%s", err, tailBytes(out))
	}
	for name, content := range extraFiles {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	// The image's user, as ov's bootstrap would create it.
	for name, line := range map[string]string{
		"etc/passwd": fmt.Sprintf("ov:x:%d:%d::/home/ov:/bin/bash\n", testUID, testGID),
		"etc/group":  fmt.Sprintf("ov:x:%d:\n", testGID),
	} {
		f, err := os.OpenFile(filepath.Join(root, name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return "", err
		}
		_, err = f.WriteString(line)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	home := filepath.Join(root, "home", "ov")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return "", err
	}
	if err := os.Chown(home, testUID, testGID); err != nil {
		return "", err
	}
	tmp := tarball + ".tmp"
	if out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "-C", root, "-cf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("tar: %v\n%s", err, out)
	}
	return tarball, os.Rename(tmp, tarball)
}

func tailBytes(b []byte) []byte {
	if len(b) > 3000 {
		return b[len(b)-3000:]
	}
	return b
}
