package data

// byteTrie maps byte strings to ids and enumerates the keys that are
// prefixes of a string, shortest first.
type byteTrie struct {
	edges map[uint64]int32 // node<<8 | byte → child node
	ids   []int32          // node → id, -1 when no key ends there
}

func newByteTrie() *byteTrie {
	return &byteTrie{edges: map[uint64]int32{}, ids: []int32{-1}}
}

// add maps key to id (a later add of the same key wins).
func (t *byteTrie) add(key string, id int32) {
	node := int32(0)
	for i := 0; i < len(key); i++ {
		k := uint64(node)<<8 | uint64(key[i])
		next, ok := t.edges[k]
		if !ok {
			next = int32(len(t.ids))
			t.ids = append(t.ids, -1)
			t.edges[k] = next
		}
		node = next
	}
	t.ids[node] = id
}

// prefixes calls visit(id, length) for every key that is a prefix of s.
func (t *byteTrie) prefixes(s string, visit func(id int32, n int)) {
	node := int32(0)
	for i := 0; i < len(s); i++ {
		next, ok := t.edges[uint64(node)<<8|uint64(s[i])]
		if !ok {
			return
		}
		node = next
		if id := t.ids[node]; id >= 0 {
			visit(id, i+1)
		}
	}
}

// longest returns the id and length of the longest key that is a prefix of
// s, or (-1, 0).
func (t *byteTrie) longest(s string) (int32, int) {
	best, n := int32(-1), 0
	if t == nil {
		return best, n
	}
	t.prefixes(s, func(id int32, l int) { best, n = id, l })
	return best, n
}
