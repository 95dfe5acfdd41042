package data

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// charsMap is a SentencePiece precompiled normalization map
// (NormalizerSpec.precompiled_charsmap, also the Hugging Face "Precompiled"
// normalizer): a darts-clone double-array trie from byte strings to offsets
// of NUL-terminated replacement strings. The blob is
// <uint32 trie size in bytes><trie units, uint32 little-endian><strings>.
type charsMap struct {
	units      []uint32
	normalized []byte
}

// parseCharsMap checks and decodes a precompiled_charsmap blob.
func parseCharsMap(blob []byte) (*charsMap, error) {
	if len(blob) <= 4 {
		return nil, errors.New("precompiled charsmap: too short")
	}
	size := binary.LittleEndian.Uint32(blob)
	if uint64(size) >= uint64(len(blob)) || size%4 != 0 || size == 0 {
		return nil, fmt.Errorf("precompiled charsmap: trie size %d does not fit the %d-byte blob", size, len(blob))
	}
	trie := blob[4 : 4+size]
	m := &charsMap{units: make([]uint32, size/4), normalized: blob[4+size:]}
	for i := range m.units {
		m.units[i] = binary.LittleEndian.Uint32(trie[4*i:])
	}
	return m, nil
}

func dartsHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func dartsValue(u uint32) uint32  { return u & (1<<31 - 1) }
func dartsLabel(u uint32) uint32  { return u & (1<<31 | 0xFF) }
func dartsOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// longest returns the replacement of the longest key that is a prefix of s
// and that key's length in bytes, or 0 when no key matches. Malformed tries
// (out-of-range positions or values) match nothing.
func (m *charsMap) longest(s string) (string, int) {
	if len(m.units) == 0 {
		return "", 0
	}
	pos := dartsOffset(m.units[0])
	bestLen, bestVal := 0, uint32(0)
	for i := 0; i < len(s); i++ {
		c := uint32(s[i])
		pos ^= c
		if int(pos) >= len(m.units) {
			break
		}
		u := m.units[pos]
		if dartsLabel(u) != c {
			break
		}
		pos ^= dartsOffset(u)
		if dartsHasLeaf(u) {
			if int(pos) >= len(m.units) {
				break
			}
			bestLen, bestVal = i+1, dartsValue(m.units[pos])
		}
	}
	if bestLen == 0 || int(bestVal) >= len(m.normalized) {
		return "", 0
	}
	rest := m.normalized[bestVal:]
	end := 0
	for end < len(rest) && rest[end] != 0 {
		end++
	}
	return string(rest[:end]), bestLen
}
