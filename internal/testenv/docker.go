package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// dockerSlots bounds concurrent dockerds on one host. Each slot owns a
// bridge and a /24, so daemons of concurrent test processes never fight over
// docker0 or its subnet.
const dockerSlots = 64

// StartDocker starts a private dockerd (own data-root, exec-root, pidfile,
// socket and bridge) on first call and returns its DOCKER_HOST value; later
// calls return the same daemon. It stops with Close. The daemon mirrors
// docker.io to the Env's registry, so `docker pull debian:bookworm` works,
// and publishes ports on 127.0.0.1 through docker-proxy. iptables is left
// alone (the host's rules, and other daemons', stay untouched), so
// containers reach the host and each other but not the outside. The daemon
// does turn on net.ipv4.ip_forward, as any default dockerd does: without it
// every `docker run` (ov shell in the demo) warns "IPv4 forwarding is
// disabled. Networking will not work."
func (e *Env) StartDocker(ctx context.Context) (string, error) {
	e.dockerMu.Lock()
	defer e.dockerMu.Unlock()
	if e.dockerHost != "" {
		return e.dockerHost, nil
	}
	bin, err := e.findTool("dockerd")
	if err != nil {
		return "", err
	}
	slot, release, err := lockSlot()
	if err != nil {
		return "", err
	}
	bridge := fmt.Sprintf("ovtdk%d", slot)
	if err := makeBridge(bridge, fmt.Sprintf("10.213.%d.1/24", slot)); err != nil {
		release()
		return "", err
	}
	dir := filepath.Join(e.Dir, "docker")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		release()
		return "", err
	}
	cfg, _ := json.Marshal(map[string]any{
		"bridge":              bridge,
		"iptables":            false,
		"ip-masq":             false,
		"ip-forward":          true,
		"registry-mirrors":    []string{"http://" + e.Registry},
		"insecure-registries": []string{e.Registry},
		"shutdown-timeout":    3,
		"storage-driver":      "overlay2",
	})
	cfgPath := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		release()
		return "", err
	}
	sock := filepath.Join(dir, "docker.sock")
	d, err := startDaemon("dockerd", filepath.Join(dir, "dockerd.log"), nil, bin,
		"--config-file", cfgPath,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--host", "unix://"+sock,
	)
	if err != nil {
		release()
		return "", err
	}
	e.onClose("dockerd", func() error {
		defer release()
		d.stop(20 * time.Second)
		killUnder(dir) // containerd shims live in their own sessions
		err := unmountUnder(dir)
		if l, lerr := netlink.LinkByName(bridge); lerr == nil {
			netlink.LinkDel(l)
		}
		return err
	})
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	err = waitReady(ctx, d, 60*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ping: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	e.dockerHost = "unix://" + sock
	return e.dockerHost, nil
}

// lockSlot takes the first free host-wide docker slot (an flock held until
// release, so a crashed process frees its slot).
func lockSlot() (int, func(), error) {
	dir := filepath.Join(os.TempDir(), "ov-testenv-docker-slots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, nil, err
	}
	for i := 0; i < dockerSlots; i++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(i)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return 0, nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return i, func() { f.Close() }, nil
	}
	return 0, nil, fmt.Errorf("dockerd: all %d slots busy", dockerSlots)
}

// makeBridge (re)creates a bridge with addr; a leftover from a crashed run
// holding our slot is replaced.
func makeBridge(name, addr string) error {
	if l, err := netlink.LinkByName(name); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(br, a); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	return nil
}

// killUnder kills processes whose command line names a path under dir:
// leftovers of daemons we started there (shims re-parented to init).
func killUnder(dir string) {
	procs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscan(p.Name(), &pid); err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), dir+"/") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
