package arch

import (
	"fmt"
	"slices"

	"github.com/ssmax/ssmax/attnscale"
)

// SSMaxConfigKey is the config.json key holding the SSMax object.
const SSMaxConfigKey = "ssmax"

// SSMaxFormatVersion is the version of the SSMax config object ssmax writes.
const SSMaxFormatVersion = 1

// SSMaxConfig is the "ssmax" object of a converted checkpoint's config.json.
type SSMaxConfig struct {
	Variant  attnscale.Variant `json:"variant"`
	Init     string            `json:"init"`
	TrainLen int               `json:"train_len"`
	SInit    *float64          `json:"s_init,omitempty"`
	BInit    *float64          `json:"b_init,omitempty"`
	Layers   []int             `json:"layers"`
	// KeyCount says what n is: the number of keys a query attends to.
	KeyCount string `json:"n,omitempty"`
	Version  int    `json:"version"`
}

// KeyCountRule is the KeyCount ssmax writes: how n is counted.
const KeyCountRule = "keys attended: position+1 counted from the document start; min(position+1, W) in a layer with a sliding window of W keys"

// Converts reports whether layer uses SSMax.
func (c *SSMaxConfig) Converts(layer int) bool { return slices.Contains(c.Layers, layer) }

func (c *SSMaxConfig) validate(layers int) error {
	if _, err := attnscale.ParseSSMax(string(c.Variant)); err != nil {
		return fmt.Errorf("ssmax: %w", err)
	}
	if c.Version < 1 || c.Version > SSMaxFormatVersion {
		return fmt.Errorf("ssmax: format version %d not supported (this ssmax reads version %d)", c.Version, SSMaxFormatVersion)
	}
	seen := map[int]bool{}
	for _, l := range c.Layers {
		if l < 0 || l >= layers {
			return fmt.Errorf("ssmax: layer %d out of range [0, %d)", l, layers)
		}
		if seen[l] {
			return fmt.Errorf("ssmax: layer %d listed twice", l)
		}
		seen[l] = true
	}
	return nil
}
