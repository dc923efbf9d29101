package daemon

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionCommand is "NAME completion [bash]": it prints a bash script
// that completes NAME's commands and flags. The candidates come from the
// binary itself: the script runs "NAME ARGS... --generate-bash-completion",
// which the CLI library answers (App.EnableBashCompletion), so they never
// drift from the binary installed. Where no candidate fits (a file
// argument), bash completes file names.
//
//	source <(relay completion)                           # this shell
//	relay completion > /etc/bash_completion.d/relay      # every shell
func completionCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a bash completion script: source <(" + name + " completion)",
		UsageText: name + " completion [bash]",
		Action: func(c *cli.Context) error {
			switch {
			case c.Args().Len() > 1:
				return fmt.Errorf("unexpected argument %q (see --help)", c.Args().Get(1))
			case c.Args().Present() && c.Args().First() != "bash":
				return fmt.Errorf("completion for %q: only bash is supported", c.Args().First())
			}
			_, err := fmt.Fprint(c.App.Writer, BashCompletion(name))
			return err
		},
	}
}

// BashCompletion returns the bash completion script of the binary name.
// It needs bash alone (not the bash-completion package). Adapted from the
// CLI library's autocomplete/bash_autocomplete (MIT licence), without its
// eval (the words typed are passed to the binary as they are) and asking
// for flags with "-" ("--" would end the library's completion).
func BashCompletion(name string) string {
	fn := "_" + regexp.MustCompile(`[^A-Za-z0-9_]`).ReplaceAllString(name, "_") + "_complete"
	return strings.NewReplacer("NAME", name, "FUNC", fn).Replace(`# bash completion for NAME (NAME completion): source it, or install it as
# /etc/bash_completion.d/NAME.
FUNC() {
	local cur="${COMP_WORDS[COMP_CWORD]}"
	local -a words=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
	local opts
	if [[ "$cur" == -* ]]; then
		words+=(-) # "-" asks for the flags; compgen keeps those that fit
	fi
	opts="$("${COMP_WORDS[0]}" "${words[@]}" --generate-bash-completion 2>/dev/null)"
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F FUNC NAME
`)
}
