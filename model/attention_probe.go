package model

import (
	"math"

	"github.com/ssmax/ssmax/attnscale"
)

// attentionProbe records, during Decoder.Feed, the attention probabilities
// of the last position fed, for every layer and query head. It only reads
// the decoder's queries and cached keys: the decoder's outputs are the same
// with or without it.
type attentionProbe struct {
	rows [][][]float64 // [layer][head][key]
}

// ProbeAttention turns recording of the last position's attention on or off
// for the following Feed calls (see LastAttention). Probing costs one extra
// pass over the cached keys of the last position per layer and head.
func (d *Decoder) ProbeAttention(on bool) {
	if !on {
		d.probe = nil
		return
	}
	if d.probe == nil {
		d.probe = &attentionProbe{rows: make([][][]float64, d.m.Spec.Layers)}
	}
}

// LastAttention returns the attention probabilities of the last position fed
// by the latest Feed call made while probing was on, indexed [layer][query
// head][key position]: the softmax of the layer's logits over every key
// position 0..p of the document, computed in float64 from the decoder's
// queries and cached keys: scale·q·k, times the layer's SSMax factor for
// the n keys the query sees (attnscale.Factor), soft-capped where the
// family caps; keys outside a sliding window get probability 0. Each row
// sums to 1. It returns nil when probing is off or nothing was fed since it
// was turned on. The slices belong to the decoder and are replaced by the
// next Feed.
func (d *Decoder) LastAttention() [][][]float64 {
	if d.probe == nil || d.probe.rows[0] == nil {
		return nil
	}
	return d.probe.rows
}

// record computes layer l's attention of the last of newRows query rows in q
// (rows of [Heads*HeadDim]) over the keys of the layer's cache (rows of
// [KVHeads*HeadDim] for positions c.start, …, past+newRows-1), with the
// layer's variant and per-head s and b.
func (p *attentionProbe) record(m *Model, l int, q []float32, c *layerCache, past, newRows int, a Attention) {
	s := m.Spec
	H, KVH, hd := s.Heads, s.KVHeads, s.HeadDim
	group := H / KVH
	qw, kw := H*hd, KVH*hd
	t := past + newRows - 1 // the last query's position
	first, n := 0, t+1      // the keys it sees
	if w := s.Window(l); w > 0 && n > w {
		first, n = t-w+1, w
	}
	sv, bv := a.values()
	rows := make([][]float64, H)
	for h := 0; h < H; h++ {
		var sh, bh float32
		if a.Variant.HasS() {
			sh = sv[h]
		}
		if a.Variant.HasB() {
			bh = bv[h]
		}
		factor := float64(attnscale.Factor(a.Variant, sh, bh, n)) * s.AttnScale
		qr := q[(newRows-1)*qw+h*hd : (newRows-1)*qw+(h+1)*hd]
		kvo := (h / group) * hd
		row := make([]float64, t+1)
		maxv := math.Inf(-1)
		for j := first; j <= t; j++ {
			kr := c.k[(j-c.start)*kw+kvo : (j-c.start)*kw+kvo+hd]
			var dot float64
			for i, x := range qr {
				dot += float64(x) * float64(kr[i])
			}
			z := factor * dot
			if cap := s.AttnSoftcap; cap != 0 {
				z = cap * math.Tanh(z/cap)
			}
			row[j] = z
			maxv = math.Max(maxv, z)
		}
		var sum float64
		for j := first; j <= t; j++ {
			row[j] = math.Exp(row[j] - maxv)
			sum += row[j]
		}
		for j := first; j <= t; j++ {
			row[j] /= sum
		}
		rows[h] = row
	}
	p.rows[l] = rows
}
