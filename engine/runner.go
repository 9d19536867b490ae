package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stdio is the standard streams of one command. A nil Stdin reads
// /dev/null; nil Stdout/Stderr discard. *os.File values are handed to the
// child as they are (a terminal stays a terminal).
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Runner runs one command to completion. A command that ran returns its
// exit code and a nil error, whatever the code; err is for commands that
// could not run at all (not installed, context cancelled before start).
type Runner interface {
	Run(ctx context.Context, argv []string, stdio Stdio) (code int, err error)
}

// ExecRunner runs commands with os/exec.
//
// While a command runs, SIGINT is left to the child (the terminal sends it
// to the whole process group, so ov just waits for the child's exit code)
// and SIGTERM/SIGHUP sent to ov are passed on to it.
type ExecRunner struct{}

// MissingToolError is returned when a command is not installed.
type MissingToolError struct {
	Tool string
	Hint string
}

func (e *MissingToolError) Error() string {
	return fmt.Sprintf("%s is not installed (not found in PATH): %s", e.Tool, e.Hint)
}

var toolHints = map[string]string{
	Docker:       "install Docker, or use podman as the engine",
	Podman:       "install podman (e.g. `apt install podman` or `dnf install podman`)",
	"systemctl":  "ov pod needs a host that runs systemd",
	"journalctl": "ov pod needs a host that runs systemd",
	"loginctl":   "ov pod needs a host that runs systemd-logind",
}

// Hint says how to install tool.
func Hint(tool string) string {
	if h := toolHints[tool]; h != "" {
		return h
	}
	return "install it"
}

// lookPath is a *MissingToolError when prog is not installed.
func lookPath(prog string) error {
	if _, err := exec.LookPath(prog); err != nil {
		return &MissingToolError{Tool: prog, Hint: Hint(prog)}
	}
	return nil
}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, argv []string, stdio Stdio) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("empty command")
	}
	if err := lookPath(argv[0]); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("%s: %w", argv[0], err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				if s != os.Interrupt {
					_ = cmd.Process.Signal(s)
				}
			case <-done:
				return
			}
		}
	}()

	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil // as a shell reports it
		}
		return ee.ExitCode(), nil
	default:
		return 0, fmt.Errorf("%s: %w", argv[0], err)
	}
}

// ExitError is a command that ran and failed.
type ExitError struct {
	Argv   []string
	Code   int
	Stderr string // the end of what it printed on stderr, trimmed
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", Display(e.Argv), e.Code)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Display is argv as a shell would take it, for messages.
func Display(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\"'\\$") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// Tail keeps the last bytes written to it: the end of a command's stderr.
type Tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// NewTail keeps the last 4 KiB, for error messages.
func NewTail() *Tail { return &Tail{max: 4096} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// Pipe runs `from | to` through an os.Pipe: no temporary file, and nothing
// is held in memory. from's stdout feeds to's stdin; both stderrs go to
// stdio.Stderr and are kept for the error. Either side failing is an
// error naming that side; if to stops reading early, from is not left
// blocked (its write end sees EPIPE).
func Pipe(ctx context.Context, r Runner, from, to []string, stdio Stdio) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	fromErr, toErr := NewTail(), NewTail()
	var (
		wg       sync.WaitGroup
		fromCode int
		fromRun  error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer pw.Close() // so `to` sees EOF once `from` is done
		fromCode, fromRun = r.Run(ctx, from, Stdio{Stdout: pw, Stderr: Tee(stdio.Stderr, fromErr)})
	}()
	toCode, toRun := r.Run(ctx, to, Stdio{Stdin: pr, Stdout: stdio.Stdout, Stderr: Tee(stdio.Stderr, toErr)})
	pr.Close() // a `from` still writing gets EPIPE instead of blocking
	wg.Wait()

	return errors.Join(sideErr(from, fromCode, fromRun, fromErr), sideErr(to, toCode, toRun, toErr))
}

func sideErr(argv []string, code int, runErr error, stderr *Tail) error {
	if runErr != nil {
		return runErr
	}
	if code != 0 {
		return &ExitError{Argv: argv, Code: code, Stderr: stderr.String()}
	}
	return nil
}

// Tee writes to w (nil: nowhere) and keeps the end in t.
func Tee(w io.Writer, t *Tail) io.Writer {
	if w == nil {
		return t
	}
	return io.MultiWriter(w, t)
}
