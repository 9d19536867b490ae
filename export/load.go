package export

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/plan"
)

// Load loads each image into a container engine (docker or podman) by
// streaming a docker archive into `<engine> load`. A load only takes effect
// when the stream is complete, so an interrupted build loads nothing.
func Load(e engine.Engine) Dest { return load{engine: e} }

type load struct{ engine engine.Engine }

func (l load) Prepare(_ context.Context, img *plan.Image, ps []ocispecs.Platform) (Export, error) {
	if err := l.Check(img, ps); err != nil {
		return nil, err
	}
	x := &loadExport{engine: l.engine, image: img.Name}
	x.entry = client.ExportEntry{
		Type:   client.ExporterDocker,
		Attrs:  map[string]string{"name": tagNames(img)},
		Output: x.start,
	}
	return x, nil
}

type loadExport struct {
	engine engine.Engine
	image  string
	entry  client.ExportEntry

	mu      sync.Mutex
	loading *engine.Loading
}

func (x *loadExport) Entries() []client.ExportEntry { return []client.ExportEntry{x.entry} }

// start runs `<engine> load` when BuildKit begins writing the archive. The
// load outlives the Output call: Commit or Abort ends it.
func (x *loadExport) start(map[string]string) (io.WriteCloser, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	l, err := x.engine.StartLoad(context.Background())
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", x.image, err)
	}
	x.loading = l
	return l, nil
}

func (x *loadExport) Commit(ctx context.Context, _ *client.SolveResponse) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.loading == nil {
		return fmt.Errorf("image %q: nothing was exported to %s load", x.image, x.engine.Name())
	}
	x.loading.Close()
	exited := make(chan error, 1)
	go func() { exited <- x.loading.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("image %q: %w", x.image, err)
		}
		return nil
	case <-ctx.Done():
		x.loading.Kill()
		return ctx.Err()
	}
}

func (x *loadExport) Abort() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.loading != nil {
		x.loading.Kill() // an incomplete archive never loads
	}
}

func (l load) Check(img *plan.Image, ps []ocispecs.Platform) error {
	if len(ps) != 1 {
		return fmt.Errorf("image %q: %s load takes one platform, not %d (use --platform)", img.Name, l.engine.Name(), len(ps))
	}
	return nil
}

func (load) Scratch(*plan.Image) string { return "" }

func (l load) Describe(img *plan.Image) string {
	return l.engine.Name() + " load " + strings.Join(img.Tags, ", ")
}

// Deliver streams the image into `<engine> load` as a docker archive
// carrying every tag; an interrupted stream loads nothing.
func (l load) Deliver(ctx context.Context, img *plan.Image, idx v1.ImageIndex, _ string) error {
	t, err := root(idx)
	if err != nil {
		return err
	}
	image, ok := t.(v1.Image)
	if !ok {
		// One platform with attestations: the image beside them.
		sub := t.(v1.ImageIndex)
		im, err := sub.IndexManifest()
		if err != nil {
			return err
		}
		for _, d := range im.Manifests {
			if d.MediaType.IsImage() && d.Annotations[refType] == "" {
				if image != nil {
					return fmt.Errorf("%s load takes one platform", l.engine.Name())
				}
				if image, err = sub.Image(d.Digest); err != nil {
					return err
				}
			}
		}
		if image == nil {
			return fmt.Errorf("%s load: the export holds no image", l.engine.Name())
		}
	}
	return l.engine.Load(ctx, image, img.Tags...)
}

// Holds asks the engine for each tag's image ID: an engine that stores
// images by config (docker's own store, podman) has the config digest as
// ID, one that stores them by manifest (docker's containerd store) the
// exported digest. A tag that is missing or names another image, in an
// engine that still has the built one, is tagged again.
func (l load) Holds(ctx context.Context, img *plan.Image, built Built) (bool, error) {
	ids := []string{built.Digest}
	if built.Config != "" {
		ids = append(ids, built.Config)
	}
	for _, tag := range img.Tags {
		if id, err := l.engine.ImageID(ctx, tag); err == nil && slices.Contains(ids, id) {
			continue
		}
		found := false
		for _, id := range ids {
			if have, err := l.engine.ImageID(ctx, id); err == nil && have == id {
				found = l.engine.Tag(ctx, id, tag) == nil
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}
