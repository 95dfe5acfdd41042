package cmd

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// showProgress reports whether progress bars should be drawn: stderr is a
// terminal and --quiet is off.
func showProgress(c *cobra.Command) bool {
	if q, _ := c.Flags().GetBool("quiet"); q {
		return false
	}
	f, ok := c.ErrOrStderr().(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgressBar returns a progress bar on stderr, or nil when hidden.
// A nil bar is safe to pass to the helpers below.
func newProgressBar(c *cobra.Command, total int64, description string, bytes bool) *progressbar.ProgressBar {
	if !showProgress(c) {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(c.ErrOrStderr()),
		progressbar.OptionSetDescription(description),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionOnCompletion(func() { io.WriteString(c.ErrOrStderr(), "") }),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	return progressbar.NewOptions64(total, opts...)
}

// setProgress moves bar to done (no-op for a nil bar).
func setProgress(bar *progressbar.ProgressBar, done int64) {
	if bar != nil {
		_ = bar.Set64(done)
	}
}

// finishProgress completes and clears the bar (no-op for a nil bar).
func finishProgress(bar *progressbar.ProgressBar) {
	if bar != nil {
		_ = bar.Finish()
	}
}
