// Package cmd holds the cobra command tree of ssmax. It is the only package
// that knows about cobra, viper and the terminal: each command parses its
// options and calls one package function.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Version is the ssmax version, set at build time with
// -ldflags "-X github.com/ssmax/ssmax/cmd.Version=...".
var Version = "0.1.0-dev"

// globalOptions are the flags every command accepts.
type globalOptions struct {
	ConfigFile string
	Quiet      bool
	LogFormat  string
	// CPUProfile is the hidden --cpuprofile file; stopProfile ends it.
	CPUProfile  string
	stopProfile func() error
}

// Execute runs the command tree on os.Args and returns the process exit
// code. SIGINT and SIGTERM cancel the command's context, so long commands
// stop cleanly and remove their temporary outputs; a second signal, for a
// command that is slow to notice (a long forward pass), ends the process
// at once (outputs are renamed into place only when complete, so that
// leaves at most a temporary directory, which the next run removes).
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the default action again for the next signal
	}()
	return Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// Run executes the command tree with args, writing to stdout and stderr, and
// returns the exit code: 0 on success, 1 with a one-line error otherwise.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root, g := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	// A command that failed skips the post-run hook: its CPU profile is
	// still written, which is when one is most wanted.
	if perr := g.endProfile(); err == nil {
		err = perr
	}
	if err != nil {
		fmt.Fprintln(stderr, "ssmax: "+oneLine(err))
		return 1
	}
	return 0
}

// oneLine keeps an error message on a single line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}

// NewRootCommand builds the whole command tree. Each call returns a fresh
// tree, so tests can execute commands independently.
func NewRootCommand() *cobra.Command {
	root, _ := newRootCommand()
	return root
}

// endProfile stops the CPU profile if one is running (once).
func (g *globalOptions) endProfile() error {
	stop := g.stopProfile
	g.stopProfile = nil
	if stop == nil {
		return nil
	}
	return stop()
}

// newRootCommand is NewRootCommand, with the global options its commands
// share.
func newRootCommand() (*cobra.Command, *globalOptions) {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "ssmax",
		Short: "Retrofit Scalable-Softmax attention into transformer checkpoints",
		Long: `ssmax retrofits Scalable-Softmax (SSMax) attention into Hugging Face
safetensors checkpoints (GPT-2, Llama, Mistral, Qwen2, Qwen3), fine-tunes them
and measures their long-context behaviour.

SSMax replaces softmax(z) by softmax((s*ln n)*z), where n is the number of keys
a query sees and s is a learned scalar per head (Nakanishi 2025, arXiv 2501.19399).

Every command reads options from flags, from environment variables SSMAX_<FLAG>
(dashes become underscores) and from a YAML file given with --config; flags
override the environment, which overrides the file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Options are bound once, for the command being executed (its own
		// flags and the persistent ones it inherits), before the logger is
		// made from them; commands then read their flag variables.
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if err := bindOptions(c); err != nil {
				return err
			}
			log, err := newLogger(c.ErrOrStderr(), g)
			if err != nil {
				return err
			}
			c.SetContext(context.WithValue(c.Context(), loggerKey{}, log))
			if g.CPUProfile != "" {
				stop, err := startCPUProfile(g.CPUProfile)
				if err != nil {
					return err
				}
				g.stopProfile = stop
			}
			return nil
		},
		PersistentPostRunE: func(*cobra.Command, []string) error { return g.endProfile() },
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.ConfigFile, "config", "", "YAML file with option values (keys are flag names)")
	pf.BoolVarP(&g.Quiet, "quiet", "q", false, "print only results and errors: no logs, no progress bars")
	pf.StringVar(&g.LogFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&g.CPUProfile, "cpuprofile", "", "write a CPU profile of the command to this file (go tool pprof)")
	_ = pf.MarkHidden("cpuprofile")

	root.AddCommand(
		newVersionCommand(),
		newInspectCommand(),
		newConvertCommand(),
		newScoreCommand(),
		newGenerateCommand(),
		newFinetuneCommand(),
		newPretrainCommand(),
		newTokenizeCommand(),
		newDemoCommand(),
		newEvalCommand(),
	)
	return root, g
}

// loggerKey is the context key of the executing command's logger.
type loggerKey struct{}

// logger returns the logger the root command made for c from --log-format
// and --quiet, or one that discards everything when c runs outside the
// command tree's pre-run hook.
func logger(c *cobra.Command) *slog.Logger {
	if ctx := c.Context(); ctx != nil {
		if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
			return l
		}
	}
	return slog.New(slog.DiscardHandler)
}

// newLogger makes the logger chosen by --log-format and --quiet, writing to
// w. It is carried in the command's context, not installed as slog's
// process-wide default.
func newLogger(w io.Writer, g *globalOptions) (*slog.Logger, error) {
	level := slog.LevelInfo
	if g.Quiet {
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch g.LogFormat {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", g.LogFormat)
	}
	return slog.New(h), nil
}

// bindOptions fills the flags of c that were not set on the command line from
// the environment (SSMAX_<NAME>) and from the --config YAML file, using a
// fresh viper instance: flags win over the environment, which wins over the
// file. It covers c's whole flag set, the persistent flags it inherits
// included (cobra merges them in when it parses), and is called once, by
// the root command's PersistentPreRunE. Every flag is bound explicitly, so
// environment variables are honoured even for keys absent from the file.
func bindOptions(c *cobra.Command) error {
	v := viper.New()
	v.SetEnvPrefix("SSMAX")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	if cf, _ := c.Flags().GetString("config"); cf != "" {
		v.SetConfigFile(cf)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("--config %s: %w", cf, err)
		}
	}
	var errs []error
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "help" {
			return
		}
		if err := v.BindEnv(f.Name); err != nil {
			errs = append(errs, err)
			return
		}
		if f.Changed || !v.IsSet(f.Name) {
			return
		}
		val := v.Get(f.Name)
		var s string
		switch x := val.(type) {
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(x)
		}
		if err := c.Flags().Set(f.Name, s); err != nil {
			errs = append(errs, fmt.Errorf("option %s=%q: %w", f.Name, s, err))
		}
	})
	return errors.Join(errs...)
}
