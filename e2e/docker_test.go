package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/overthink/ov/internal/testenv"
)

// startDocker starts the harness dockerd (testenv) for a test that may run
// for timeout, and returns the test's context and the daemon's address.
func startDocker(t *testing.T, env *testenv.Env, timeout time.Duration) (context.Context, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	host, err := env.StartDocker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, host
}

// docker runs the docker CLI against the harness daemon.
func docker(t *testing.T, ctx context.Context, host string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", host}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// layerCount is the number of layers of ref in the daemon, and the number
// of its history entries (`docker history` rows).
func layerCount(t *testing.T, ctx context.Context, host, ref string) (layers, history int) {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(docker(t, ctx, host, "image", "inspect", "-f", "{{len .RootFS.Layers}}", ref)))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(docker(t, ctx, host, "history", "-q", "--no-trunc", ref)), "\n")
	return n, len(rows)
}

// loaded maps a daemon and an OCI layout to the name the layout's image
// was loaded under there.
var (
	loadedMu sync.Mutex
	loaded   = map[[2]string]string{}
)

// dockerLoad makes ref name the layout's amd64 image in the daemon at host.
// The first call per layout loads it, under a name no test merges; later
// ones tag that: the Debian images take seconds to load, and four tests
// want them.
func dockerLoad(t *testing.T, ctx context.Context, host, layout, ref string) {
	t.Helper()
	loadedMu.Lock()
	defer loadedMu.Unlock()
	key := [2]string{host, layout}
	src, ok := loaded[key]
	if !ok {
		src = "ov.test/e2e-loaded/" + filepath.Base(layout) + ":" + strconv.Itoa(len(loaded))
		loadArchive(t, ctx, host, layout, src)
		loaded[key] = src
	}
	docker(t, ctx, host, "tag", src, ref)
}

// loadArchive writes the layout's amd64 image as a docker archive tagged
// ref and loads it into the daemon at host.
func loadArchive(t *testing.T, ctx context.Context, host, layout, ref string) {
	t.Helper()
	img, err := layoutImage(layout, "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "docker", "-H", host, "load", "-i", archive).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
}

// runsIn runs each command with bash in ref on the daemon at host and checks
// that its output contains what the command maps to.
func runsIn(t *testing.T, ctx context.Context, host, ref string, want map[string]string) {
	t.Helper()
	for cmd, w := range want {
		out, err := exec.CommandContext(ctx, "docker", "-H", host, "run", "--rm", ref, "bash", "-c", cmd).CombinedOutput()
		if err != nil {
			t.Errorf("docker run %q: %v\n%s", cmd, err, out)
			continue
		}
		if !strings.Contains(string(out), w) {
			t.Errorf("docker run %q: %q, want it to contain %q", cmd, out, w)
		}
	}
}
