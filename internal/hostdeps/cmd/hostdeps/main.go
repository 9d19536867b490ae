// Command hostdeps prints the apt packages of the host programs that
// hostdeps.Programs requires and this host lacks, space-separated, for the
// setup task to install; nothing when all are there.
package main

import (
	"fmt"
	"strings"

	"github.com/overthink/ov/internal/hostdeps"
)

func main() {
	if m := hostdeps.Missing(); len(m) > 0 {
		fmt.Println(strings.Join(m, " "))
	}
}
