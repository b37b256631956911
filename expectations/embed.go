// Package expectations embeds the per-target known-deviation files so the
// gauntlet binary can apply them from anywhere (<suite>-reference.yaml is the
// default for the embedded reference runtime).
package expectations

import "embed"

//go:embed *.yaml
var files embed.FS

// Builtin returns an embedded expectations file by target name ("reference").
func Builtin(name string) ([]byte, error) { return files.ReadFile(name + ".yaml") }
