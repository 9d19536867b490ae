package builder

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"golang.org/x/sys/unix"
)

// buildkitdBinary is the real buildkitd the tests run: the project's
// bin/buildkitd (built by `go tool task setup`), else one on PATH.
func buildkitdBinary(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	if p := filepath.Join(root, "bin", "buildkitd"); isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("buildkitd"); err == nil {
		return p
	}
	t.Fatalf("buildkitd not found in %s/bin or PATH: run `go tool task setup`", root)
	return ""
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// startDaemon runs buildkitd with a private root under dir plus args,
// stopped (and its mounts undone) when the test ends. It returns a channel
// closed when the daemon exits.
func startDaemon(t *testing.T, dir string, args ...string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "buildkitd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args = append([]string{"--root", filepath.Join(dir, "root"), "--otel-socket-path", filepath.Join(dir, "otel.sock")}, args...)
	cmd := exec.Command(buildkitdBinary(t), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = withSbinPath(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		unmountUnder(t, dir)
	})
	return done
}

// waitDial polls Dial until the daemon answers, fails or dies.
func waitDial(t *testing.T, done <-chan struct{}, dir, addr string, o Options) *client.Client {
	t.Helper()
	end := time.Now().Add(60 * time.Second)
	for {
		c, err := Dial(context.Background(), addr, o)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		select {
		case <-done:
			t.Fatalf("buildkitd exited:\n%s", tail(filepath.Join(dir, "buildkitd.log"), 20))
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("buildkitd at %s never answered: %v\n%s", addr, err, tail(filepath.Join(dir, "buildkitd.log"), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// solveHi builds a one-file scratch image through c, exports it to a local
// directory and checks the file arrived.
func solveHi(t *testing.T, c *client.Client) {
	t.Helper()
	ctx := context.Background()
	def, err := llb.Scratch().File(llb.Mkfile("/x", 0o644, []byte("hi"))).Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err = c.Solve(ctx, def, client.SolveOpt{
		Exports: []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: out}},
	}, nil)
	if err != nil {
		t.Fatalf("solve: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "hi" {
		t.Fatalf("exported /x = %q, want %q", b, "hi")
	}
}

// unmountUnder lazily unmounts anything buildkitd left mounted below dir so
// the test's temp dir can be removed.
func unmountUnder(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, mp := range mounts {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			t.Errorf("unmount %s: %v", mp, err)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pki is a throwaway certificate authority writing PEM files into dir.
type pki struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	CA   string // CA certificate file
}

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	key := genKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: dir, cert: cert, key: key, CA: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, p.CA, "CERTIFICATE", der)
	return p
}

// issue signs a leaf certificate (a server one valid for 127.0.0.1, or a
// client one) and returns its cert and key files.
func (p *pki) issue(t *testing.T, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key := genKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func genKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mustContain fails unless err is non-nil and its message has every want.
func mustContain(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q spans lines, want one sentence", err)
	}
}

// processesServing lists live processes whose argv contains addr.
func processesServing(addr string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || !alive(pid) {
			continue
		}
		if args, err := cmdline(pid); err == nil && contains(args, addr) {
			pids = append(pids, pid)
		}
	}
	return pids
}
