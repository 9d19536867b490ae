package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Archive is an image saved out of the engine into a temp file.
type Archive struct {
	v1.Image
	dir string
}

// Close removes the archive.
func (a *Archive) Close() error {
	if a == nil {
		return nil
	}
	return os.RemoveAll(a.dir)
}

// Save reads ref out of the engine (`docker save ref`, streamed into a temp
// file). The image is valid until the Archive is closed.
func (e Engine) Save(ctx context.Context, ref string) (_ *Archive, err error) {
	dir, err := os.MkdirTemp(e.TempDir, "ov-save-")
	if err != nil {
		return nil, err
	}
	a := &Archive{dir: dir}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	f, err := os.Create(filepath.Join(dir, "image.tar"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	argv := e.SaveArgv(ref)
	if err := e.run(ctx, argv, Stdio{Stdout: f}); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if a.Image, err = tarball.ImageFromPath(f.Name(), nil); err != nil {
		return nil, fmt.Errorf("reading %s: %w", Display(argv), err)
	}
	if _, err := a.Image.Manifest(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", Display(argv), err)
	}
	return a, nil
}

// Load loads img into the engine under the given tags: the archive is
// written straight into `docker load`'s stdin, never to disk.
func (e Engine) Load(ctx context.Context, img v1.Image, tags ...string) error {
	if len(tags) == 0 {
		return errors.New("load: no tag for the image")
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return fmt.Errorf("load: tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	l, err := e.StartLoad(ctx)
	if err != nil {
		return err
	}
	werr := tarball.MultiRefWrite(refs, l)
	l.Close()
	if err := l.Wait(); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("writing the image to %s: %w", Display(e.LoadArgv()), werr)
	}
	return nil
}

// Tag gives ref a second name.
func (e Engine) Tag(ctx context.Context, ref, tag string) error {
	return e.run(ctx, e.TagArgv(ref, tag), Stdio{Stdout: e.Stderr})
}

// ImageID is the ID of ref in the engine's store, with its algorithm
// ("sha256:..."); an error when the store has no ref.
func (e Engine) ImageID(ctx context.Context, ref string) (string, error) {
	var out strings.Builder
	if err := e.run(ctx, e.IDArgv(ref), Stdio{Stdout: &out}); err != nil {
		return "", err
	}
	id := strings.TrimSpace(out.String())
	if id != "" && !strings.Contains(id, ":") {
		id = "sha256:" + id // podman
	}
	return id, nil
}

// Loading is a `load` in progress: write a docker-archive to it, then Close
// and Wait; or Kill it. A load takes effect only when the archive is
// complete, so a killed one loads nothing.
type Loading struct {
	w      *os.File
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// StartLoad runs `load`, reading the archive written to the Loading.
func (e Engine) StartLoad(ctx context.Context) (*Loading, error) {
	argv := e.LoadArgv()
	if e.Runner == nil {
		if err := lookPath(argv[0]); err != nil { // now, not as a broken pipe later
			return nil, err
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Loading{w: pw, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.err = e.run(ctx, argv, Stdio{Stdin: pr, Stdout: e.Stderr})
		pr.Close() // a writer still writing gets EPIPE instead of blocking
	}()
	return l, nil
}

func (l *Loading) Write(p []byte) (int, error) { return l.w.Write(p) }

// Close ends the archive. A second Close is harmless.
func (l *Loading) Close() error {
	l.w.Close()
	return nil
}

// Wait returns the load's outcome once it exited.
func (l *Loading) Wait() error {
	<-l.done
	l.cancel()
	return l.err
}

// Kill stops the load before the archive is complete and waits for it.
func (l *Loading) Kill() {
	l.cancel()
	<-l.done
	l.w.Close()
}

// run runs argv; a failure carries the end of its stderr.
func (e Engine) run(ctx context.Context, argv []string, stdio Stdio) error {
	tail := NewTail()
	stdio.Stderr = Tee(e.Stderr, tail)
	code, err := e.runner().Run(ctx, argv, stdio)
	switch {
	case err != nil:
		return err
	case code != 0 && ctx.Err() != nil:
		return fmt.Errorf("%s: %w", Display(argv), ctx.Err())
	case code != 0:
		return &ExitError{Argv: argv, Code: code, Stderr: tail.String()}
	}
	return nil
}

// Metadata is what the engine tells about an image without saving it: no
// layer content, so no compressed sizes or digests.
type Metadata struct {
	ID     string // image ID, as the engine prints it
	Layers int    // number of layers
	// History is the config history, oldest first. podman gives it as the
	// config has it. docker's CLI has no such field: it is read from
	// `docker history`, where an empty-layer entry is the one with size 0
	// (a layer with no file content, only directories, is 0 as well, so
	// it reads as empty: History then has fewer non-empty entries than
	// Layers) and a tab in created_by reads as a space.
	History []v1.History
}

// Metadata reads ref's layer count and history from the engine's store
// (two `image inspect`/`history` calls: quick, whatever the image's size).
func (e Engine) Metadata(ctx context.Context, ref string) (Metadata, error) {
	var out strings.Builder
	if err := e.run(ctx, e.LayersArgv(ref), Stdio{Stdout: &out}); err != nil {
		return Metadata{}, err
	}
	var m Metadata
	if _, err := fmt.Sscan(out.String(), &m.ID, &m.Layers); err != nil {
		return Metadata{}, fmt.Errorf("reading %s: %q: %w", Display(e.LayersArgv(ref)), out.String(), err)
	}
	out.Reset()
	argv := e.HistoryArgv(m.ID) // by ID: the image the layer count is of
	if err := e.run(ctx, argv, Stdio{Stdout: &out}); err != nil {
		return Metadata{}, err
	}
	var err error
	if e.podman() {
		err = json.Unmarshal([]byte(out.String()), &m.History)
	} else {
		m.History, err = parseHistoryRows(out.String())
	}
	if err != nil {
		return Metadata{}, fmt.Errorf("reading %s: %w", Display(argv), err)
	}
	return m, nil
}

// parseHistoryRows reads HistoryArgv's docker rows (newest first) into a
// history, oldest first.
func parseHistoryRows(s string) ([]v1.History, error) {
	var h []v1.History
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		sizeField, createdBy, ok := strings.Cut(sc.Text(), " ")
		size, err := strconv.ParseInt(sizeField, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("history row %q: want <size> <created_by as JSON>", sc.Text())
		}
		e := v1.History{EmptyLayer: size == 0}
		if err := json.Unmarshal([]byte(createdBy), &e.CreatedBy); err != nil {
			return nil, fmt.Errorf("history row %q: %w", sc.Text(), err)
		}
		h = append(h, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	return h, nil
}
