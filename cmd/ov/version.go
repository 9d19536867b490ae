package main

import "fmt"

// VersionCmd prints the invocation's CalVer.
type VersionCmd struct{}

func (c *VersionCmd) Help() string {
	return `Prints YYYY.DDD.HHMM for the current UTC time: year, day of the year and
hour*100+minute, without zero padding (2026.47.905 is 09:05 on 16 February
2026). It is a valid semver version and sorts chronologically. Images with
tag: auto are tagged with it (and latest).`
}

func (c *VersionCmd) Run(g *Globals) error {
	_, err := fmt.Fprintln(g.Stdout, g.CalVer())
	return err
}
