package builder

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestRemoteTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newPKI(t, dir, "ov-test")
	serverCert, serverKey := ca.issue(t, "buildkitd", true)
	clientCert, clientKey := ca.issue(t, "ov", false)
	addr := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	done := startDaemon(t, dir, "--addr", addr,
		"--tlscacert", ca.CA, "--tlscert", serverCert, "--tlskey", serverKey)
	good := Options{TLSCACert: ca.CA, TLSCert: clientCert, TLSKey: clientKey}
	waitDial(t, done, dir, addr, good)

	t.Run("builds through --builder", func(t *testing.T) {
		o := good
		o.Addr = addr
		c, err := Connect(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		solveHi(t, c)
	})

	t.Run("BUILDKIT_HOST", func(t *testing.T) {
		t.Setenv(EnvHost, addr)
		c, err := Connect(context.Background(), good)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})

	t.Run("wrong CA", func(t *testing.T) {
		other := newPKI(t, t.TempDir(), "other")
		o := good
		o.Addr, o.TLSCACert = addr, other.CA
		_, err := Connect(context.Background(), o)
		mustContain(t, err, "TLS handshake with buildkitd at "+addr+" failed", "--tlscacert")
		t.Log(err)
	})

	t.Run("no client certificate", func(t *testing.T) {
		_, err := Connect(context.Background(), Options{Addr: addr, TLSCACert: ca.CA})
		mustContain(t, err, "TLS handshake with buildkitd at "+addr+" failed", "--tlscert")
		t.Log(err)
	})

	t.Run("plaintext to a TLS builder", func(t *testing.T) {
		_, err := Connect(context.Background(), Options{Addr: addr})
		mustContain(t, err, "cannot reach buildkitd at "+addr, "does it require TLS?")
		t.Log(err)
	})

	t.Run("cert without key", func(t *testing.T) {
		_, err := Connect(context.Background(), Options{Addr: addr, TLSCACert: ca.CA, TLSCert: clientCert})
		mustContain(t, err, "--tlscert and --tlskey go together")
	})

	t.Run("missing CA file", func(t *testing.T) {
		o := good
		o.Addr, o.TLSCACert = addr, filepath.Join(dir, "nope.pem")
		_, err := Connect(context.Background(), o)
		mustContain(t, err, "nope.pem")
		t.Log(err)
	})
}

func TestDefaultSocketAnswering(t *testing.T) {
	dir := t.TempDir()
	isolate(t)
	addr := "unix://" + filepath.Join(dir, "buildkitd.sock")
	done := startDaemon(t, dir, "--addr", addr)
	waitDial(t, done, dir, addr, Options{})
	DefaultAddr = addr

	c, err := Connect(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	solveHi(t, c)
	if st, err := Status(context.Background(), Options{}); err != nil || st.Running {
		t.Fatalf("managed builder state %+v, %v: want none started while the default socket answers", st, err)
	}
}

func TestUnreachable(t *testing.T) {
	ctx := context.Background()

	t.Run("refused", func(t *testing.T) {
		addr := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
		_, err := Connect(ctx, Options{Addr: addr})
		mustContain(t, err, "cannot reach buildkitd at "+addr, "connection refused", "is it running")
	})

	t.Run("no socket", func(t *testing.T) {
		addr := "unix://" + filepath.Join(t.TempDir(), "buildkitd.sock")
		_, err := Connect(ctx, Options{Addr: addr})
		mustContain(t, err, "cannot reach buildkitd at "+addr, "no such file or directory")
	})

	t.Run("silent peer", func(t *testing.T) {
		// Accepts connections and never speaks: only the probe timeout ends it.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		defer func(d time.Duration) { probeTimeout = d }(probeTimeout)
		probeTimeout = 2 * time.Second
		addr := "tcp://" + l.Addr().String()
		_, err = Connect(ctx, Options{Addr: addr})
		mustContain(t, err, "cannot reach buildkitd at "+addr, "no answer within 2s")
	})

	t.Run("bad scheme", func(t *testing.T) {
		_, err := Connect(ctx, Options{Addr: "http://127.0.0.1:1234"})
		mustContain(t, err, `unsupported scheme "http"`, "unix", "tcp", "docker-container", "kube-pod")
	})

	t.Run("docker-container without docker daemon", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "docker.sock"))
		_, err := Connect(ctx, Options{Addr: "docker-container://buildkitd"})
		mustContain(t, err, "cannot reach buildkitd at docker-container://buildkitd")
		t.Log(err)
	})
}

func TestPermissionDenied(t *testing.T) {
	// Root is never denied, so feed the classifier what connect(2) returns.
	sock := "/run/buildkit/buildkitd.sock"
	err := classify("unix://"+sock, false, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)})
	mustContain(t, err, "permission denied on buildkitd socket "+sock, "run as root or add yourself to the group owning "+sock)
}

func TestOnThisHost(t *testing.T) {
	for addr, want := range map[string]bool{
		"unix:///run/buildkit/buildkitd.sock": true,
		"tcp://127.0.0.1:1234":                true,
		"tcp://[::1]:1234":                    true,
		"tcp://localhost:1234":                true,
		"tcp://10.0.0.5:1234":                 false,
		"tcp://buildkit.example:1234":         false,
		"ssh://user@host":                     false,
		"::bad":                               false,
	} {
		if got := OnThisHost(addr); got != want {
			t.Errorf("OnThisHost(%q) = %v, want %v", addr, got, want)
		}
	}
}
