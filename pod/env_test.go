package pod

// The real container environment for e2e_test.go: a private dockerd and a
// private podman store, both on their own bridge and subnet so they do not
// disturb (or get disturbed by) other daemons on the machine. Kept in this
// one file so it can be swapped for internal/testenv.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overthink/ov/internal/testenv"
)

type testEnv struct {
	dir     string
	dockerd *exec.Cmd
	exited  chan error
	bridges []string // created by us (docker's) or by CNI on our behalf
}

var (
	envOnce sync.Once
	env     *testEnv
	envErr  error
)

// needEnv starts the environment on first use and points DOCKER_HOST,
// CONTAINERS_CONF and CONTAINERS_STORAGE_CONF of this process (and so of
// every docker/podman it runs) at it.
func needEnv(t *testing.T) *testEnv {
	t.Helper()
	testenv.SkipShort(t, "needs dockerd and podman")
	envOnce.Do(func() { env, envErr = startEnv() })
	if envErr != nil {
		t.Fatalf("test environment: %v", envErr)
	}
	return env
}

func startEnv() (*testEnv, error) {
	// Short path: containerd's socket lives below it (108-byte limit).
	dir, err := os.MkdirTemp("", "ovpod")
	if err != nil {
		return nil, err
	}
	e := &testEnv{dir: dir}
	net1, net2, err := freeSubnets()
	if err != nil {
		return nil, err
	}
	suffix := fmt.Sprint(os.Getpid() % 100000)

	// docker: an existing bridge of ours; no iptables changes (ports are
	// published by docker-proxy on 127.0.0.1).
	br := "ovpd" + suffix
	for _, argv := range [][]string{
		{"ip", "link", "add", "name", br, "type", "bridge"},
		{"ip", "addr", "add", net1 + ".1/24", "dev", br},
		{"ip", "link", "set", br, "up"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			e.stop()
			return nil, fmt.Errorf("%v: %v: %s", argv, err, out)
		}
		e.bridges = []string{br}
	}
	log, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	sock := "unix://" + filepath.Join(dir, "docker.sock")
	e.dockerd = exec.Command("dockerd",
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", sock,
		"--bridge", br,
		"--iptables=false", "--ip-masq=false",
	)
	e.dockerd.Stdout, e.dockerd.Stderr = log, log
	e.dockerd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := e.dockerd.Start(); err != nil {
		e.stop()
		return nil, fmt.Errorf("dockerd (apt install docker.io): %w", err)
	}
	e.exited = make(chan error, 1)
	go func() { e.exited <- e.dockerd.Wait() }()
	os.Setenv("DOCKER_HOST", sock)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if exec.Command("docker", "version").Run() == nil {
			break
		}
		select {
		case err := <-e.exited:
			e.exited <- err
			e.stop()
			return nil, fmt.Errorf("dockerd exited (%v); log: %s", err, tail(filepath.Join(dir, "dockerd.log")))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.stop()
			return nil, fmt.Errorf("dockerd did not answer in 90s; log: %s", tail(filepath.Join(dir, "dockerd.log")))
		}
	}

	// podman: private store, private CNI network (own bridge, subnet and
	// IPAM state); default_ulimits=[] because the default asks for limits
	// this sandbox does not grant.
	cniBridge := "ovpc" + suffix
	netName := "ovpod" + suffix
	e.bridges = append(e.bridges, cniBridge)
	files := map[string]string{
		"containers.conf": fmt.Sprintf(`[containers]
default_ulimits = []
log_driver = "k8s-file"

[engine]
events_logger = "file"
cgroup_manager = "cgroupfs"
tmp_dir = %[1]q

[network]
network_backend = "cni"
network_config_dir = %[2]q
default_network = %[3]q
`, filepath.Join(dir, "podman-tmp"), filepath.Join(dir, "cni"), netName),
		"storage.conf": fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
			filepath.Join(dir, "podman-root"), filepath.Join(dir, "podman-run")),
		filepath.Join("cni", netName+".conflist"): fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %[1]q,
  "plugins": [
    {"type": "bridge", "bridge": %[2]q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %[3]q,
              "ranges": [[{"subnet": "%[4]s.0/24", "gateway": "%[4]s.1"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, netName, cniBridge, filepath.Join(dir, "cni-ipam"), net2),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			e.stop()
			return nil, err
		}
	}
	os.Setenv("CONTAINERS_CONF", filepath.Join(dir, "containers.conf"))
	os.Setenv("CONTAINERS_STORAGE_CONF", filepath.Join(dir, "storage.conf"))
	return e, nil
}

// stop ends dockerd, removes podman's containers and storage, and deletes
// the bridges; called from TestMain.
func (e *testEnv) stop() {
	if e == nil {
		return
	}
	if os.Getenv("CONTAINERS_STORAGE_CONF") != "" {
		exec.Command("podman", "rm", "-af", "-t", "0").Run()
	}
	if e.dockerd != nil && e.dockerd.Process != nil {
		e.dockerd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(30 * time.Second):
			e.dockerd.Process.Kill()
			<-e.exited
		}
	}
	for _, br := range e.bridges {
		exec.Command("ip", "link", "del", br).Run()
	}
	unmountBelow(e.dir)
	os.RemoveAll(e.dir)
}

// freeSubnets picks two 10.x.y.0/24 networks no interface here uses.
func freeSubnets() (string, string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", "", err
	}
	used := func(prefix string) bool {
		for _, a := range addrs {
			if strings.HasPrefix(a.String(), prefix+".") {
				return true
			}
		}
		return false
	}
	var free []string
	for i := os.Getpid() % 200; len(free) < 2 && i < os.Getpid()%200+200; i++ {
		n := fmt.Sprintf("10.%d.%d", 201+i%50, i%250)
		if !used(n) {
			free = append(free, n)
		}
	}
	if len(free) < 2 {
		return "", "", fmt.Errorf("no free 10.x.y.0/24 subnet")
	}
	return free[0], free[1], nil
}

// unmountBelow detaches mounts left under dir (by a dockerd or a
// debootstrap that died), so removing dir cannot reach into them.
func unmountBelow(dir string) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		env.stop()
	}
	os.Exit(code)
}

// run runs a command of the test's own (not one under test) and returns
// its combined output.
func run(t *testing.T, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}
