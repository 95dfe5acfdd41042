package arch

import (
	"fmt"
	"slices"

	"github.com/ssmax/ssmax/checkpoint"
)

// Load detects the spec of an opened checkpoint and checks that it holds
// every expected tensor with the expected shape.
func Load(c *checkpoint.Checkpoint) (*Spec, error) {
	s, err := Detect(c.Config, c.TensorNames())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.ConfigPath, err)
	}
	if err := s.Check(c); err != nil {
		return nil, err
	}
	return s, nil
}

// Check verifies that c holds every tensor of the spec with its shape, and
// no SSMax tensor the config does not announce.
func (s *Spec) Check(c *checkpoint.Checkpoint) error {
	for _, want := range s.Tensors() {
		t, ok := c.Tensor(want.Name)
		if !ok {
			if want.Optional {
				continue
			}
			return fmt.Errorf("%s: tensor %q: %w: missing (%s expects %s %v)", c.Path, want.Name, ErrTensor, s.Family, want.Role, want.Shape)
		}
		if !slices.Equal(t.Shape, want.Shape) {
			return fmt.Errorf("%s: tensor %q: %w: shape %v, expected %v", t.File.Path(), want.Name, ErrTensor, t.Shape, want.Shape)
		}
		if !t.DType.IsFloat() {
			return fmt.Errorf("%s: tensor %q: %w: dtype %s is not a float type", t.File.Path(), want.Name, ErrTensor, t.DType)
		}
	}
	for _, name := range c.TensorNames() {
		if IsSSMaxTensor(name) {
			if !slices.ContainsFunc(s.Tensors(), func(t TensorSpec) bool { return t.Name == name }) {
				if s.SSMax == nil {
					return fmt.Errorf("%s: tensor %q: %w: an SSMax parameter, but config.json has no %q object", c.Path, name, ErrTensor, SSMaxConfigKey)
				}
				return fmt.Errorf("%s: tensor %q: %w: an SSMax parameter the %q config (variant %s, layers %v) does not use", c.Path, name, ErrTensor, SSMaxConfigKey, s.SSMax.Variant, s.SSMax.Layers)
			}
		}
	}
	return nil
}

// Unexpected lists the tensors of c that the spec does not name and that are
// not known buffers.
func (s *Spec) Unexpected(c *checkpoint.Checkpoint) []string {
	known := map[string]bool{}
	for _, t := range s.Tensors() {
		known[t.Name] = true
	}
	var out []string
	for _, name := range c.TensorNames() {
		if !known[name] && !IsBuffer(name) {
			out = append(out, name)
		}
	}
	return out
}

// ParamCount counts the elements of the model weights present in c (no
// buffers, no SSMax parameters; a tied head counts once).
func (s *Spec) ParamCount(c *checkpoint.Checkpoint) int64 {
	var n int64
	for _, w := range s.Weights() {
		if t, ok := c.Tensor(w.Name); ok {
			n += t.NumElements()
		}
	}
	return n
}
