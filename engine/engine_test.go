package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestArgv(t *testing.T) {
	for _, tc := range []struct {
		e                                  Engine
		save, load, tag, exists, run, stop string
	}{
		{Engine{}, "docker save img:1", "docker load", "docker tag img:1 img:2", "docker image inspect --format {{.Id}} img:1", "docker run --rm img:1", "docker stop c"},
		{Engine{Bin: "/usr/local/bin/docker", Flags: []string{"--context", "x"}}, "/usr/local/bin/docker --context x save img:1", "/usr/local/bin/docker --context x load", "/usr/local/bin/docker --context x tag img:1 img:2", "/usr/local/bin/docker --context x image inspect --format {{.Id}} img:1", "/usr/local/bin/docker --context x run --rm img:1", "/usr/local/bin/docker --context x stop c"},
		{Engine{Bin: "podman"}, "podman save --format docker-archive img:1", "podman load", "podman tag img:1 img:2", "podman image exists img:1", "podman run --rm img:1", "podman stop c"},
		{Engine{Bin: "/usr/bin/podman", Flags: []string{"--root", "/r"}}, "/usr/bin/podman --root /r save --format docker-archive img:1", "/usr/bin/podman --root /r load", "/usr/bin/podman --root /r tag img:1 img:2", "/usr/bin/podman --root /r image exists img:1", "/usr/bin/podman --root /r run --rm img:1", "/usr/bin/podman --root /r stop c"},
	} {
		for _, got := range []struct {
			argv []string
			want string
		}{
			{tc.e.SaveArgv("img:1"), tc.save},
			{tc.e.LoadArgv(), tc.load},
			{tc.e.TagArgv("img:1", "img:2"), tc.tag},
			{tc.e.ExistsArgv("img:1"), tc.exists},
			{tc.e.IDArgv("img:1"), strings.Replace(tc.load, "load", "image inspect --format {{.Id}} img:1", 1)},
			{tc.e.RunArgv("--rm", "img:1"), tc.run},
			{tc.e.Argv("stop", "c"), tc.stop},
		} {
			if s := strings.Join(got.argv, " "); s != got.want {
				t.Errorf("%q: %q, want %q", tc.e.Bin, s, got.want)
			}
		}
	}
	// The builders never share Flags' backing array.
	e := Engine{Flags: make([]string, 1, 8)}
	a, b := e.Argv("x"), e.Argv("y")
	if a[2] != "x" || b[2] != "y" {
		t.Errorf("argv share memory: %q %q", a, b)
	}
}

func TestDetect(t *testing.T) {
	have := func(names ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			for _, h := range names {
				if h == n {
					return "/usr/bin/" + n, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	for _, tt := range []struct {
		have []string
		want string
	}{{[]string{"docker", "podman"}, Docker}, {[]string{"podman"}, Podman}, {[]string{"docker"}, Docker}} {
		if got, err := Detect(have(tt.have...)); err != nil || got != tt.want {
			t.Errorf("Detect(%v) = %q, %v; want %q", tt.have, got, err, tt.want)
		}
	}
	if _, err := Detect(have()); err == nil {
		t.Error("Detect with nothing installed: want an error")
	}
	if Check(Docker) != nil || Check(Podman) != nil || Check("nerdctl") == nil {
		t.Error("Check accepts only docker and podman")
	}
}

// shRunner runs every argv as the shell script script, so a test can stand
// in for `load` with a real process reading a real pipe.
type shRunner struct{ script string }

func (r shRunner) Run(ctx context.Context, _ []string, stdio Stdio) (int, error) {
	return ExecRunner{}.Run(ctx, []string{"sh", "-c", r.script}, stdio)
}

func TestLoading(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	got := filepath.Join(dir, "got")

	// A complete archive: the load reads all of it.
	l, err := Engine{Runner: shRunner{"cat > " + got}}.StartLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("archive"))
	l.Close()
	if err := l.Wait(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); string(b) != "archive" {
		t.Fatalf("load read %q", b)
	}

	// The load fails early: writing fails instead of blocking, and the
	// error carries its stderr.
	l, err = Engine{Runner: shRunner{"head -c 10 >/dev/null; echo bad archive >&2; exit 4"}}.StartLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for range 1024 { // 64 MiB: far more than a pipe holds
		if _, werr = l.Write(make([]byte, 64<<10)); werr != nil {
			break
		}
	}
	if !errors.Is(werr, syscall.EPIPE) {
		t.Errorf("write to a failed load: %v", werr)
	}
	l.Close()
	var ee *ExitError
	if err := l.Wait(); !errors.As(err, &ee) || ee.Code != 4 || !strings.Contains(err.Error(), "load: exit status 4: bad archive") {
		t.Errorf("failed load: %v", err)
	}

	// Killed before the archive is complete: the load never sees its end.
	done := filepath.Join(dir, "done")
	l, err = Engine{Runner: shRunner{"cat >/dev/null; touch " + done}}.StartLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("half"))
	start := time.Now()
	l.Kill()
	if time.Since(start) > 5*time.Second {
		t.Errorf("Kill took %s", time.Since(start))
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(done); err == nil {
		t.Error("a killed load ran to its end")
	}

	// No engine installed: said at once, not as a broken pipe later.
	var mt *MissingToolError
	if _, err := (Engine{Bin: "ov-no-such-tool"}).StartLoad(ctx); !errors.As(err, &mt) {
		t.Errorf("missing engine: %v", err)
	}
	var stderr bytes.Buffer
	if err := (Engine{Runner: shRunner{"cat >/dev/null"}, Stderr: &stderr}).Load(ctx, nil); err == nil || !strings.Contains(err.Error(), "no tag") {
		t.Errorf("load without tags: %v", err)
	}
}

func TestParseHistoryRows(t *testing.T) {
	h, err := parseHistoryRows("0 \"USER 1000\"\n5 \"RUN a\\tb\\nc\"\n0 \"RUN mkdir /d\"\n\n12 \"ADD x /\"\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD x / false", "RUN mkdir /d true", "RUN a\tb\nc false", "USER 1000 true"}
	var got []string
	for _, e := range h {
		got = append(got, e.CreatedBy+" "+map[bool]string{true: "true", false: "false"}[e.EmptyLayer])
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history %q, want %q (oldest first; size 0 reads as empty)", got, want)
	}
	for _, bad := range []string{"x \"a\"", "5", "5 not-json"} {
		if _, err := parseHistoryRows(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if got := strings.Join((Engine{Bin: "podman"}).HistoryArgv("i"), " "); got != "podman image inspect --format {{json .History}} i" {
		t.Errorf("podman history argv %q", got)
	}
	if got := strings.Join((Engine{}).HistoryArgv("i"), " "); got != "docker history --no-trunc --human=false --format {{.Size}} {{json .CreatedBy}} i" {
		t.Errorf("docker history argv %q", got)
	}
}
