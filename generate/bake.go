package generate

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/overthink/ov/plan"
)

// BakePath is the bake file, relative to the project.
const BakePath = ".build/docker-bake.hcl"

// Bake renders the bake file for plans (parents before children): a default
// group with every target in that order, and one fully expanded target per
// image. hclwrite escapes every string (quotes, backslashes, newlines, "${"
// and "%{"); writeBlocks lays the file out as hclwrite formats it.
func Bake(plans []*plan.Image) ([]byte, error) {
	blocks, err := bakeBlocks(plans)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(Header(BakePath) + "\n")
	writeBlocks(&b, blocks)
	return b.Bytes(), nil
}

// bakeBlocks is the bake file's blocks in order.
func bakeBlocks(plans []*plan.Image) ([]*bakeBlock, error) {
	names := make([]cty.Value, 0, len(plans))
	planned := map[string]bool{}
	for _, img := range plans {
		names = append(names, cty.StringVal(img.Name))
		planned[img.Name] = true
	}
	group := &bakeBlock{typ: "group", label: "default"}
	group.set("targets", list(names))
	blocks := []*bakeBlock{group}
	if e := epochOf(plans); e != nil {
		v := &bakeBlock{typ: "variable", label: plan.EpochEnv}
		v.set("default", cty.StringVal(strconv.FormatInt(e.Unix, 10)))
		blocks = append(blocks, v)
	}

	for _, img := range plans {
		t := &bakeBlock{typ: "target", label: img.Name}
		t.set("context", cty.StringVal("."))
		t.set("dockerfile", cty.StringVal(ContainerfilePath(img.Name)))
		if img.Parent != "" {
			if !planned[img.Parent] {
				return nil, fmt.Errorf("image %q: base image %q has no target", img.Name, img.Parent)
			}
			key, err := ContextName(img.ParentRef)
			if err != nil {
				return nil, fmt.Errorf("image %q: %w", img.Name, err)
			}
			if slices.Contains(stages(img), key) {
				return nil, fmt.Errorf("image %q: its Containerfile has a stage named %q, which bake would replace with base image %q", img.Name, key, img.Parent)
			}
			t.set("contexts", cty.MapVal(map[string]cty.Value{
				key: cty.StringVal("target:" + img.Parent),
			}))
		}
		t.set("tags", strings2list(img.Tags))
		t.set("platforms", strings2list(img.Platforms))
		describe(t, img)
		setEpoch(t, img.Epoch)
		blocks = append(blocks, t)
	}
	return blocks, nil
}

// epochOf is the plans' epoch (plan.Options gives every image the same),
// nil for none or now. An epoch of now is left to bake's run (the build's
// time), and the file says nothing of it: a second generate writes the
// same file, and the targets keep bake's default output, which --load and
// --push replace.
func epochOf(plans []*plan.Image) *plan.Epoch {
	for _, img := range plans {
		if img.Epoch != nil && !img.Epoch.Now {
			return img.Epoch
		}
	}
	return nil
}

// epochOutput is the output attributes that stamp the epoch, as ov build's
// exports do: created and history times, and layer file mtimes clamped to
// it. `--push` keeps them (bake sets push=true on this output). `--load`
// adds a docker output beside it (buildx's setLoadOverride): the image is
// exported twice and the loaded one is not stamped; `--set
// *.output=type=docker,rewrite-timestamp=true,source-date-epoch=N` loads it
// stamped, once. A `--set *.output=...` replaces it and must add them to match.
const epochOutput = "type=image,rewrite-timestamp=true,source-date-epoch=%s"

// setEpoch stamps target t with the SOURCE_DATE_EPOCH variable, which the
// environment variable of that name overrides at bake time (bake then also
// passes it as a build argument, so the steps see it as ov build's do). An
// explicit epoch is passed to the steps from the file too. An epoch of now
// (epochOf) sets nothing.
func setEpoch(t *bakeBlock, e *plan.Epoch) {
	if e == nil || e.Now {
		return
	}
	v := epochVar()
	out := hclwrite.TokensForFunctionCall("format", hclwrite.TokensForValue(cty.StringVal(epochOutput)), v)
	t.setRaw("output", hclwrite.TokensForTuple([]hclwrite.Tokens{out}))
	if e.Explicit {
		t.setObject("args", []hclwrite.ObjectAttrTokens{{
			Name: hclwrite.TokensForIdentifier(plan.EpochEnv), Value: v,
		}})
	}
}

// describe sets target t's labels (into the image config, as ov build's
// compiler puts them) and its annotations on every manifest (as ov
// build's exporter attributes do).
func describe(t *bakeBlock, img *plan.Image) {
	if len(img.Labels) > 0 {
		labels := map[string]cty.Value{}
		for k, v := range img.Labels {
			labels[k] = cty.StringVal(v)
		}
		t.set("labels", cty.MapVal(labels))
	}
	var annotations []hclwrite.Tokens
	for _, k := range slices.Sorted(maps.Keys(img.Annotations)) {
		a := "manifest:" + k + "="
		if k == plan.KeyCreated {
			annotations = append(annotations, createdAnnotation(a))
			continue
		}
		annotations = append(annotations, hclwrite.TokensForValue(cty.StringVal(a+img.Annotations[k])))
	}
	if len(annotations) > 0 {
		// compact drops the created annotation of an empty epoch.
		t.setRaw("annotations", hclwrite.TokensForFunctionCall("compact", hclwrite.TokensForTuple(annotations)))
	}
}

// createdAnnotation is prefix followed by the time of SOURCE_DATE_EPOCH
// at bake time (the variable may override the generated default) as RFC
// 3339 in UTC, or "" when the variable is empty (the build's time):
//
//	SOURCE_DATE_EPOCH == "" ? "" : format("<prefix>%s", timeadd("1970-01-01T00:00:00Z", format("%ss", SOURCE_DATE_EPOCH)))
func createdAnnotation(prefix string) hclwrite.Tokens {
	str := func(s string) hclwrite.Tokens { return hclwrite.TokensForValue(cty.StringVal(s)) }
	op := func(t hclsyntax.TokenType, s string) *hclwrite.Token {
		return &hclwrite.Token{Type: t, Bytes: []byte(s)}
	}
	at := hclwrite.TokensForFunctionCall("format", str("%ss"), epochVar())
	created := hclwrite.TokensForFunctionCall("timeadd", str("1970-01-01T00:00:00Z"), at)
	out := append(epochVar(), op(hclsyntax.TokenEqualOp, "=="))
	out = append(out, str("")...)
	out = append(out, op(hclsyntax.TokenQuestion, "?"))
	out = append(out, str("")...)
	out = append(out, op(hclsyntax.TokenColon, ":"))
	return append(out, hclwrite.TokensForFunctionCall("format", str(strings.ReplaceAll(prefix, "%", "%%")+"%s"), created)...)
}

// epochVar is a reference to the SOURCE_DATE_EPOCH variable.
func epochVar() hclwrite.Tokens {
	return hclwrite.TokensForTraversal(hcl.Traversal{hcl.TraverseRoot{Name: plan.EpochEnv}})
}

// ContextName is the bake context key a Containerfile's `FROM ref` looks
// up: the Dockerfile frontend normalizes the reference to its familiar form
// without ":latest" ("ghcr.io/o/fedora:latest" -> "ghcr.io/o/fedora",
// "docker.io/library/x:latest" -> "x") and only finds a context by that name.
func ContextName(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("parent reference %q: %w", ref, err)
	}
	return strings.TrimSuffix(reference.FamiliarString(named), ":latest"), nil
}

// stages names the build stages of img's Containerfile: a bake named
// context of the same name replaces a stage.
func stages(img *plan.Image) []string {
	var out []string
	for _, c := range img.Contexts {
		out = append(out, c.Layer)
	}
	for _, ps := range img.Pixi {
		out = append(out, ps.Stage)
	}
	if img.Routes != nil {
		out = append(out, plan.StageTraefik)
	}
	if len(img.Fragments) > 0 {
		out = append(out, plan.StageSupervisord)
	}
	return out
}

func strings2list(ss []string) cty.Value {
	vals := make([]cty.Value, len(ss))
	for i, s := range ss {
		vals[i] = cty.StringVal(s)
	}
	return list(vals)
}

func list(vals []cty.Value) cty.Value {
	if len(vals) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	return cty.ListVal(vals)
}
