package pod

import (
	"io"
	"os"

	"golang.org/x/term"
)

// DetectStdin classifies r for ShellArgv's -i/-t choice.
func DetectStdin(r io.Reader) StdinKind {
	f, ok := r.(*os.File)
	if !ok {
		if r == nil {
			return StdinNone
		}
		return StdinData
	}
	if term.IsTerminal(int(f.Fd())) {
		return StdinTerminal
	}
	st, err := f.Stat()
	if err != nil {
		return StdinNone // closed
	}
	if st.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0 || st.Mode().IsRegular() {
		return StdinData
	}
	return StdinNone // /dev/null and other devices
}
