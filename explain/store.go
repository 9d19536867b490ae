package explain

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"

	"github.com/overthink/ov/internal/builddir"
)

// Dir is where records live, relative to the project.
const Dir = ".build/state"

// Path is image's record file in project dir.
func Path(dir, image string) string { return filepath.Join(dir, Dir, image+".json") }

// Read returns image's record in project dir, or nil when there is none
// (or it is from another ov version, or unreadable: it only costs an
// explanation).
func Read(dir, image string) *Record {
	b, err := builddir.ReadFile(dir, Dir+"/"+image+".json")
	if err != nil {
		return nil
	}
	var r Record
	if json.Unmarshal(b, &r) != nil || r.Version != version || r.Image != image {
		return nil
	}
	return &r
}

// Write records r in project dir atomically (builddir.WriteFile: no
// symbolic link under .build/ is followed). Platforms built earlier from
// the same inputs on the same builder stay recorded: a build narrowed with
// --platform does not forget the others. So does the last export when r
// exports nothing (a parent built only into the image named): what it
// exported is still the image of these inputs.
func Write(dir string, r *Record) error {
	rec := *r
	if old := Read(dir, r.Image); old != nil && sameInputs(old, r) {
		rec.Platforms = maps.Clone(old.Platforms)
		maps.Copy(rec.Platforms, r.Platforms)
		if rec.Digest == "" {
			rec.Digest = old.Digest
		}
		if rec.Exported == "" {
			rec.Exported, rec.ExportedConfig, rec.Outputs = old.Exported, old.ExportedConfig, old.Outputs
		}
	}
	b, err := json.MarshalIndent(&rec, "", "  ")
	if err != nil {
		return err
	}
	if err := builddir.WriteFile(dir, Dir+"/"+r.Image+".json", append(b, '\n')); err != nil {
		return fmt.Errorf("build record: %w", err)
	}
	return nil
}

// sameInputs says a and b differ at most in which platforms they cover
// and what they exported.
func sameInputs(a, b *Record) bool {
	x, y := *a, *b
	x.Platforms, y.Platforms = nil, nil
	x.Digest, y.Digest = "", ""
	x.DigestErr, y.DigestErr = "", ""
	x.Exported, y.Exported = "", ""
	x.ExportedConfig, y.ExportedConfig = "", ""
	x.Outputs, y.Outputs = "", ""
	for p, d := range a.Platforms {
		if e, ok := b.Platforms[p]; ok && d != "" && e != "" && d != e {
			return false // same platform, another base
		}
	}
	if a.Digest != "" && b.Digest != "" && a.Digest != b.Digest {
		// A new index digest with every shared platform unchanged: the
		// other platforms' records may be stale.
		return false
	}
	return reflect.DeepEqual(normal(x), normal(y))
}

// normal round-trips r through JSON so nil and empty compare equal.
func normal(r Record) Record {
	b, _ := json.Marshal(r)
	var out Record
	json.Unmarshal(b, &out)
	return out
}
