// Command ssmax retrofits Scalable-Softmax (SSMax) attention into transformer
// checkpoints, fine-tunes them and evaluates their long-context behaviour.
package main

import (
	"os"

	"github.com/ssmax/ssmax/cmd"
)

func main() {
	os.Exit(cmd.Execute())
}
