package spec

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/agnivade/levenshtein"
)

// String formats a position as "file:line", or "file" when the line is unknown.
func (p Pos) String() string {
	if p.Line > 0 {
		return p.File + ":" + strconv.Itoa(p.Line)
	}
	return p.File
}

// Error is one user error in a project, pointing at the file and line it
// comes from.
type Error struct {
	Pos Pos
	Msg string
}

// Error formats as "file:line: msg", "file: msg" without a line, or just msg
// without a file.
func (e *Error) Error() string {
	if e.Pos.File == "" {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Errors are all user errors found in a project, sorted by file and line.
type Errors []*Error

// Error formats one error as "validation error: <e>" and several as
// "N validation errors:" followed by one "  <e>" line each.
func (es Errors) Error() string {
	switch len(es) {
	case 0:
		return "no validation errors"
	case 1:
		return "validation error: " + es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d validation errors:", len(es))
	for _, e := range es {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// sortErrors orders errors by file and line; errors at the same place keep
// the order in which they were found.
func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
}

// errList collects errors while a project is read.
type errList struct{ list Errors }

func (l *errList) add(pos Pos, format string, args ...any) {
	if l == nil { // a discarding sink
		return
	}
	l.list = append(l.list, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// suggest returns the candidate nearest to s, or "" when none is close enough
// to be a plausible typo: an edit distance of at most 2 (3 for long names),
// else a prefix either way ("gpg" for "gpgkey").
func suggest(s string, candidates []string) string {
	limit := 2
	if len(s) > 8 {
		limit = 3
	}
	best, bestDist := "", -1
	for _, c := range candidates {
		if len(c)-len(s) > limit || len(s)-len(c) > limit {
			continue // the distance is at least the difference in length
		}
		d := levenshtein.ComputeDistance(strings.ToLower(s), strings.ToLower(c))
		if d <= limit && d < len(s) && (bestDist < 0 || d < bestDist || (d == bestDist && c < best)) {
			best, bestDist = c, d
		}
	}
	if best != "" || len(s) < 3 {
		return best
	}
	for _, c := range candidates {
		if len(c) >= 3 && (strings.HasPrefix(c, s) || strings.HasPrefix(s, c)) {
			if best == "" || len(c) < len(best) || (len(c) == len(best) && c < best) {
				best = c
			}
		}
	}
	return best
}

// didYouMean returns ` (did you mean "x"?)` for the nearest candidate, or "".
func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// DidYouMean returns ` (did you mean "x"?)` naming the candidate nearest to
// s when one is close enough to be a typo, else "".
func DidYouMean(s string, candidates []string) string { return didYouMean(s, candidates) }
