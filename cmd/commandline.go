package cmd

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// outputNeutral reports the flags commandLine leaves out: those that do not
// change what a command writes, and --config, whose values are recorded as
// the flags they set.
func outputNeutral(name string) bool {
	switch name {
	case "config", "quiet", "log-format", "help":
		return true
	}
	return false
}

// commandLine reconstructs the command line of the executing command c from
// its own arguments, not from the process's: its path (e.g. "ssmax
// convert"), the positional args, then every flag that was set, on the
// command line or by binding from the environment or the --config file, as
// --name=value in name order. Words a POSIX shell would split or expand are
// single-quoted, so the line can be pasted back.
func commandLine(c *cobra.Command, args []string) string {
	words := []string{c.CommandPath()}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	c.Flags().Visit(func(f *pflag.Flag) {
		if outputNeutral(f.Name) {
			return
		}
		val := f.Value.String()
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			val = strings.Join(sv.GetSlice(), ",")
		}
		words = append(words, "--"+f.Name+"="+shellQuote(val))
	})
	return strings.Join(words, " ")
}

// shellQuote returns s unchanged when a shell reads it as one literal word,
// else single-quoted.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
