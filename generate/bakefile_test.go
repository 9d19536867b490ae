package generate

import (
	"bytes"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// hclwriteBake lays blocks out with hclwrite's File and its formatter, as
// Bake did before writeBlocks: the reference writeBlocks must match.
func hclwriteBake(blocks []*bakeBlock) []byte {
	f := hclwrite.NewEmptyFile()
	for i, bl := range blocks {
		if i > 0 {
			f.Body().AppendNewline()
		}
		b := f.Body().AppendNewBlock(bl.typ, []string{bl.label}).Body()
		for _, a := range bl.attrs {
			switch {
			case a.raw != nil:
				b.SetAttributeRaw(a.name, a.raw)
			case a.obj != nil:
				b.SetAttributeRaw(a.name, hclwrite.TokensForObject(a.obj))
			default:
				b.SetAttributeValue(a.name, a.val)
			}
		}
	}
	return append([]byte(Header(BakePath)+"\n"), f.Bytes()...)
}

// hostile are label and annotation keys and values that stress the
// layout: multi-byte and multi-rune grapheme clusters (the alignment
// counts clusters), escapes, template introducers, keys hclwrite writes
// bare (valid identifiers) and quoted. cty makes strings NFC: "e\u0301" is
// "é" (two keys equal in NFC would be one).
var hostile = []string{
	"", "plain", "maintainer", "a-b", "_x", "null", "1abc", "dev.overthink.x", "e\u0301", "👍🏽", "👨‍👩‍👧", "日本語", "עברית", "\u200b", "\u2028",
	`"quoted"`, `back\slash`, "${var}", "%{ if x }", "$${x}", "new\nline", "cr\r\nlf", "tab\tx", "nul\x00", "del\x7f",
}

// TestBakeLayoutIsHCLWrite: Bake writes exactly what hclwrite's formatter
// writes for the same blocks, on the test projects (every kind of epoch)
// and on plans labelled and annotated with hostile keys and values; the
// result is canonical (hclwrite.Format leaves it as it is).
func TestBakeLayoutIsHCLWrite(t *testing.T) {
	check := func(t *testing.T, plans []*plan.Image) {
		t.Helper()
		got, err := Bake(plans)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := bakeBlocks(plans)
		if err != nil {
			t.Fatal(err)
		}
		if want := hclwriteBake(blocks); !bytes.Equal(got, want) {
			t.Fatalf("Bake differs from hclwrite's layout:\n--- got\n%s\n--- want\n%s", got, want)
		}
		if f := hclwrite.Format(got); !bytes.Equal(f, got) {
			t.Errorf("not canonical: hclwrite.Format gives\n%s", f)
		}
	}
	epochs := map[string]*plan.Epoch{
		"explicit": {Unix: 1700000000, Explicit: true},
		"commit":   {Unix: 1700000000},
		"now":      {Unix: 1700000000, Now: true},
	}
	for _, name := range []string{"rpm", "deb", "family", "../../testdata/compat"} {
		p, err := spec.Load(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range slices.Sorted(maps.Keys(epochs)) {
			t.Run(filepath.Base(name)+"/"+e, func(t *testing.T) {
				plans, err := plan.Build(p, nil, plan.Options{CalVer: "2026.1.0", Users: baseuser.Offline, Epoch: epochs[e],
					Origin: plan.Origin{Source: "https://example.com/${x}/é", Revision: "abc"}})
				if err != nil {
					t.Fatal(err)
				}
				check(t, plans)
			})
		}
	}
	t.Run("hostile", func(t *testing.T) {
		var plans []*plan.Image
		for i, s := range hostile {
			img := &plan.Image{Name: "img" + string(rune('a'+i)), External: "debian:bookworm", Tags: []string{s}, Platforms: []string{s, s + s},
				Labels: map[string]string{}, Annotations: map[string]string{plan.KeyCreated: s}, Epoch: epochs["explicit"]}
			if i > 0 {
				img.Parent, img.ParentRef = plans[i-1].Name, "example.com/"+plans[i-1].Name
			}
			for j, k := range hostile[:i+1] {
				img.Labels[k] = hostile[(i+j)%len(hostile)]
				img.Annotations[k+s] = s + k
			}
			plans = append(plans, img)
		}
		// A parent whose bake context is a valid identifier ("x" from docker.io/library/x).
		plans = append(plans, &plan.Image{Name: "x", External: "debian:bookworm"},
			&plan.Image{Name: "y", Parent: "x", ParentRef: "x:latest", Labels: map[string]string{"k": "v"}})
		check(t, plans)
	})
}
