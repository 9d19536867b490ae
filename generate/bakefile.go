package generate

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// bakeBlock is a block of the bake file: `typ "label" { attributes }`.
type bakeBlock struct {
	typ, label string
	attrs      []bakeAttr
}

// bakeAttr is an attribute; one of val, raw and obj is set.
type bakeAttr struct {
	name string
	val  cty.Value                   // a literal of strings, lists and maps of strings
	raw  hclwrite.Tokens             // an expression on one line
	obj  []hclwrite.ObjectAttrTokens // an object constructor: one or more one-line values
}

func (b *bakeBlock) set(name string, v cty.Value) {
	b.attrs = append(b.attrs, bakeAttr{name: name, val: v})
}

func (b *bakeBlock) setRaw(name string, t hclwrite.Tokens) {
	b.attrs = append(b.attrs, bakeAttr{name: name, raw: t})
}

func (b *bakeBlock) setObject(name string, o []hclwrite.ObjectAttrTokens) {
	b.attrs = append(b.attrs, bakeAttr{name: name, obj: o})
}

// writeBlocks writes blocks, a blank line between them, byte for byte as
// hclwrite.File.Bytes would (TestBakeLayoutIsHCLWrite compares them) but
// without its formatter: that counts the grapheme clusters of every token
// of every attribute line with a new bufio.Scanner each (4 KiB), twice,
// and made over a third of generate's allocations at scale. Every name, label and value
// still goes through hclwrite's tokens and its escaping; only the
// indentation and the alignment of "=" are laid out here.
func writeBlocks(w *bytes.Buffer, blocks []*bakeBlock) {
	for i, bl := range blocks {
		if i > 0 {
			w.WriteByte('\n')
		}
		w.WriteString(bl.typ + " ")
		hclwrite.TokensForValue(cty.StringVal(bl.label)).WriteTo(w)
		w.WriteString(" {\n")
		assigns := make([]assign, len(bl.attrs))
		for j, a := range bl.attrs {
			assigns[j] = a.assign()
		}
		writeAssigns(w, 2, assigns)
		w.WriteString("}\n")
	}
}

// assign is one `key = value` line, or with entries (an object of one or
// more entries) `key = {`, an entry per line, `}`.
type assign struct {
	key, value hclwrite.Tokens
	entries    []assign
}

func (a bakeAttr) assign() assign {
	out := assign{key: hclwrite.TokensForIdentifier(a.name)}
	switch {
	case a.raw != nil:
		out.value = a.raw
	case a.obj != nil:
		for _, e := range a.obj {
			out.entries = append(out.entries, assign{key: e.Name, value: e.Value})
		}
	case (a.val.Type().IsMapType() || a.val.Type().IsObjectType()) && a.val.LengthInt() > 0:
		// The keys and order of hclwrite.TokensForValue: sorted, a key
		// that is a valid identifier bare, any other quoted.
		for it := a.val.ElementIterator(); it.Next(); {
			k, v := it.Element()
			key := hclwrite.TokensForValue(k)
			if hclsyntax.ValidIdentifier(k.AsString()) {
				key = hclwrite.TokensForIdentifier(k.AsString())
			}
			out.entries = append(out.entries, assign{key: key, value: hclwrite.TokensForValue(v)})
		}
	default:
		out.value = hclwrite.TokensForValue(a.val)
	}
	return out
}

// writeAssigns writes lines indented by indent spaces. As hclwrite
// formats them, the "=" of consecutive one-line assignments is aligned one
// column after the widest key; an object's lines end such a run.
func writeAssigns(w *bytes.Buffer, indent int, lines []assign) {
	pad := strings.Repeat(" ", indent)
	for start := 0; start < len(lines); {
		end, width := start, 0
		for ; end < len(lines) && lines[end].entries == nil; end++ {
			width = max(width, columns(lines[end].key))
		}
		for _, l := range lines[start:end] {
			w.WriteString(pad)
			writeTokens(w, l.key)
			w.WriteString(strings.Repeat(" ", width-columns(l.key)+1) + "= ")
			writeTokens(w, l.value)
			w.WriteByte('\n')
		}
		if end < len(lines) {
			w.WriteString(pad)
			writeTokens(w, lines[end].key)
			w.WriteString(" = {\n")
			writeAssigns(w, indent+2, lines[end].entries)
			w.WriteString(pad + "}\n")
			end++
		}
		start = end
	}
}

// writeTokens writes ts as its spaces lay it out, but for the spaces before
// its first token: its place on the line decides those (the formatter
// sets them), and hclwrite may have spaced a token shared with another
// expression for its place there.
func writeTokens(w *bytes.Buffer, ts hclwrite.Tokens) {
	if len(ts) > 0 {
		w.Write(ts[0].Bytes)
		ts[1:].WriteTo(w)
	}
}

// columns is the width of ts as writeTokens writes it, in hclwrite's
// columns (Tokens.Columns: grapheme clusters) but without its
// bufio.Scanner per token for ASCII, a byte per column (hclwrite escapes
// control characters).
func columns(ts hclwrite.Tokens) int {
	n := 0
	for i, t := range ts {
		if !ascii(t.Bytes) {
			return ts.Columns() - ts[0].SpacesBefore
		}
		if i > 0 {
			n += t.SpacesBefore
		}
		n += len(t.Bytes)
	}
	return n
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
