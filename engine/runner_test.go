package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestExecRunnerExitCodes(t *testing.T) {
	ctx := context.Background()
	var out, errOut bytes.Buffer
	code, err := ExecRunner{}.Run(ctx, []string{"sh", "-c", "cat; echo oops >&2; exit 7"}, Stdio{Stdin: strings.NewReader("in\n"), Stdout: &out, Stderr: &errOut})
	if code != 7 || err != nil || out.String() != "in\n" || errOut.String() != "oops\n" {
		t.Errorf("got %d %v %q %q", code, err, out.String(), errOut.String())
	}
	// Killed by a signal: reported the way a shell does, 128+n.
	code, err = ExecRunner{}.Run(ctx, []string{"sh", "-c", "kill -TERM $$"}, Stdio{})
	if code != 128+15 || err != nil {
		t.Errorf("signalled: got %d %v", code, err)
	}
	_, err = ExecRunner{}.Run(ctx, []string{"ov-no-such-tool"}, Stdio{})
	var mt *MissingToolError
	if !errors.As(err, &mt) || mt.Tool != "ov-no-such-tool" {
		t.Errorf("missing tool: got %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err = ExecRunner{}.Run(ctx, []string{"podman", "load"}, Stdio{})
	if err == nil || err.Error() != "podman is not installed (not found in PATH): install podman (e.g. `apt install podman` or `dnf install podman`)" {
		t.Errorf("missing podman: got %v", err)
	}
}

func TestExecRunnerCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, err := ExecRunner{}.Run(ctx, []string{"sleep", "60"}, Stdio{})
		if err == nil && code == 0 {
			t.Errorf("cancelled command: got %d %v", code, err)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
}

func TestPipe(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	// 8 MiB through the pipe: far more than a pipe buffer holds.
	err := Pipe(ctx, ExecRunner{}, []string{"sh", "-c", "head -c 8388608 /dev/zero"}, []string{"wc", "-c"}, Stdio{Stdout: &out})
	if err != nil || strings.TrimSpace(out.String()) != "8388608" {
		t.Errorf("got %v %q", err, out.String())
	}

	// The producer fails: its stderr is in the error.
	err = Pipe(ctx, ExecRunner{}, []string{"sh", "-c", "echo no such image >&2; exit 3"}, []string{"cat"}, Stdio{})
	if err == nil || !strings.Contains(err.Error(), `sh -c "echo no such image >&2; exit 3": exit status 3: no such image`) {
		t.Errorf("producer failure: %v", err)
	}

	// The consumer stops reading early: the producer must not hang on a
	// full pipe, and the consumer's failure is reported.
	var stderr bytes.Buffer
	err = Pipe(ctx, ExecRunner{}, []string{"yes"}, []string{"sh", "-c", "head -c 10 >/dev/null; echo bad archive >&2; exit 4"}, Stdio{Stderr: &stderr})
	if err == nil || !strings.Contains(err.Error(), "exit status 4: bad archive") {
		t.Errorf("consumer failure: %v", err)
	}
	if !strings.Contains(stderr.String(), "bad archive") {
		t.Errorf("stderr not passed on: %q", stderr.String())
	}
}
