package arch

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ssmax/ssmax/checkpoint"
)

// familyTable is everything ssmax knows about one family: its names in
// config.json, the name of every tensor it stores, where its attention
// module lives, and how its config fills a Spec. Each family has one file
// declaring its table; nothing else in ssmax branches on the family.
type familyTable struct {
	family Family
	// architectures are transformers class names of the family.
	architectures []string
	// names maps each role the family can store to its tensor name:
	// "{i}" is the layer, "{p}" the Spec's Prefix.
	names map[Role]string
	// attention is the attention module of layer {i}: SSMax parameters are
	// stored under it.
	attention string
	// read fills s from the config (shapes and features).
	read func(r *reader, s *Spec, tensorNames []string)
}

// Families lists the supported families in the order they are documented.
var Families = []Family{GPT2, Llama, Mistral, Qwen2, Qwen3, GPTNeoX, OLMo2, Gemma2, Gemma3, Phi3}

// tables are the family tables, by family.
var tables = map[Family]*familyTable{
	GPT2:    gpt2Table,
	Llama:   llamaTable,
	Mistral: mistralTable,
	Qwen2:   qwen2Table,
	Qwen3:   qwen3Table,
	GPTNeoX: gptNeoXTable,
	OLMo2:   olmo2Table,
	Gemma2:  gemma2Table,
	Gemma3:  gemma3Table,
	Phi3:    phi3Table,
}

// tableOf returns the table of a supported family (the Spec of an
// unsupported one cannot exist: Detect refuses it).
func tableOf(f Family) *familyTable { return tables[f] }

// modelTypeAliases maps other model_type spellings to a family.
var modelTypeAliases = map[string]Family{
	"gemma3": Gemma3, // the text model of a Gemma 3 config stores model_type gemma3_text
}

// expand fills a name template for layer i.
func (s *Spec) expand(template string, layer int) string {
	n := strings.ReplaceAll(template, "{p}", s.Prefix)
	return strings.ReplaceAll(n, "{i}", strconv.Itoa(layer))
}

// DetectFamily names the family of a config from model_type, or else from
// the first of architectures.
func DetectFamily(cfg *checkpoint.Config) (Family, error) {
	mt, _, err := cfg.String("model_type")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var archs []string
	if _, err := cfg.Decode("architectures", &archs); err != nil {
		return "", fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if mt != "" {
		if _, ok := tables[Family(mt)]; ok {
			return Family(mt), nil
		}
		if f, ok := modelTypeAliases[mt]; ok {
			return f, nil
		}
		return "", fmt.Errorf("%w model family %q (supported: %s)", ErrUnsupported, mt, supportedList())
	}
	for _, a := range archs {
		for _, f := range Families {
			for _, name := range tables[f].architectures {
				if name == a {
					return f, nil
				}
			}
		}
	}
	if len(archs) > 0 {
		return "", fmt.Errorf("%w model family %q (supported: %s)", ErrUnsupported, archs[0], supportedList())
	}
	return "", fmt.Errorf("%w: neither model_type nor architectures is set (supported families: %s)", ErrConfig, supportedList())
}

func supportedList() string {
	names := make([]string, len(Families))
	for i, f := range Families {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}
