package finetune

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/ssmax/ssmax/checkpoint"
	"go.yaml.in/yaml/v3"
)

// LoadPreset reads a model preset (configs/models/NAME.yaml): the keys of a
// Hugging Face config.json, in YAML.
func LoadPreset(path string) (*checkpoint.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	js, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := checkpoint.ParseConfig(js)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}
