package plan

import (
	"regexp"
	"strings"

	"github.com/overthink/ov/spec"
)

// checkWord rejects values no shell word in a Containerfile RUN can carry (a
// newline ends the instruction) or that are empty. It guards the output,
// not the input (spec checks that, more strictly): values spec refuses but
// a RUN can carry still plan, so the quoting is tested on them.
func checkWord(what, s string) error {
	if s == "" {
		return inputErr(spec.Pos{}, "empty %s", what)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return inputErr(spec.Pos{}, "%s %q contains a control character", what, s)
	}
	return nil
}

// safeWord matches words the shell reads literally without quotes.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// Quote returns s as one literal POSIX shell word.
func Quote(s string) string {
	if safeWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// QuoteAll quotes each word and joins them with spaces.
func QuoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}
