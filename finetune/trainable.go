package finetune

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/model"
)

// isAttention reports parameters of the attention sub-block (projections,
// per-head norms and SSMax parameters; not the pre-attention norm).
func isAttention(r arch.Role) bool {
	switch r {
	case arch.RoleQKV, arch.RoleQKVBias, arch.RoleQ, arch.RoleK, arch.RoleV, arch.RoleQBias, arch.RoleKBias,
		arch.RoleVBias, arch.RoleQNorm, arch.RoleKNorm, arch.RoleOut, arch.RoleOutBias, arch.RoleSSMaxS, arch.RoleSSMaxB:
		return true
	}
	return false
}

// selectTrainable marks each parameter trainable or frozen (spago computes
// no gradient for frozen ones) and returns the trainable ones.
func selectTrainable(ps []*model.Param, c *Config) ([]*model.Param, error) {
	compile := func(pats []string) ([]*regexp.Regexp, error) {
		var out []*regexp.Regexp
		for _, p := range pats {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", p, err)
			}
			out = append(out, re)
		}
		return out, nil
	}
	train, err := compile(c.TrainPatterns)
	if err != nil {
		return nil, err
	}
	freeze, err := compile(c.FreezePatterns)
	if err != nil {
		return nil, err
	}
	matches := func(res []*regexp.Regexp, name string) bool {
		for _, re := range res {
			if re.MatchString(name) {
				return true
			}
		}
		return false
	}
	var out []*model.Param
	for _, p := range ps {
		on := false
		switch c.Train {
		case "all":
			on = true
		case "attention":
			on = isAttention(p.Role)
		case "ssmax":
			on = p.Role.IsSSMax()
		}
		if matches(train, p.Name) {
			on = true
		}
		if matches(freeze, p.Name) {
			on = false
		}
		p.SetRequiresGrad(on)
		if on {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		hint := ""
		if c.Train == "ssmax" {
			hint = " (--train ssmax needs a converted checkpoint or --switch-to-ssmax-at)"
		}
		return nil, fmt.Errorf("no trainable parameters: --train %s%s with patterns [%s] / [%s]", c.Train, hint,
			strings.Join(c.TrainPatterns, ","), strings.Join(c.FreezePatterns, ","))
	}
	return out, nil
}
