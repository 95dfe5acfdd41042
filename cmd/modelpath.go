package cmd

import (
	"github.com/spf13/cobra"
	"github.com/ssmax/ssmax/hfcache"
)

// modelPath is how every command reads a model location (--model, inspect's
// PATH, convert's SRC): an existing path as it is, else text shaped like a
// Hugging Face model id ("org/name" or "org/name@REVISION") as the snapshot
// directory of the local hub cache (hfcache.Resolve; nothing is
// downloaded). A resolved id is logged.
func modelPath(c *cobra.Command, spec string) (string, error) {
	dir, err := hfcache.Resolve(spec)
	if err != nil {
		return "", err
	}
	if dir != spec {
		logger(c).Info("model id", "id", spec, "dir", dir)
	}
	return dir, nil
}

// modelPaths resolves every entry of specs with modelPath.
func modelPaths(c *cobra.Command, specs []string) ([]string, error) {
	out := make([]string, len(specs))
	for i, s := range specs {
		var err error
		if out[i], err = modelPath(c, s); err != nil {
			return nil, err
		}
	}
	return out, nil
}
