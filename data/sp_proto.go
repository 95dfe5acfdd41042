package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// spPieceType is ModelProto.SentencePiece.Type.
type spPieceType uint8

// SentencePiece piece types (sentencepiece_model.proto).
const (
	spNormal      spPieceType = 1
	spUnknown     spPieceType = 2
	spControl     spPieceType = 3
	spUserDefined spPieceType = 4
	spUnused      spPieceType = 5
	spByte        spPieceType = 6
)

// SentencePiece model types (TrainerSpec.ModelType).
const (
	spModelUnigram = 1
	spModelBPE     = 2
	spModelWord    = 3
	spModelChar    = 4
)

// spPiece is one entry of ModelProto.pieces.
type spPiece struct {
	piece string
	score float32
	typ   spPieceType
}

// spModelProto holds the parts of a SentencePiece ModelProto that encoding
// and decoding need. Defaults are those of sentencepiece_model.proto.
type spModelProto struct {
	pieces []spPiece

	// TrainerSpec
	modelType               int
	byteFallback            bool
	treatWhitespaceAsSuffix bool
	unkID, bosID, eosID     int
	padID                   int
	unkSurface              string

	// NormalizerSpec
	normName               string
	charsMap               []byte
	addDummyPrefix         bool
	removeExtraWhitespaces bool
	escapeWhitespaces      bool
}

// defaultUnkSurface is TrainerSpec.unk_surface's default, " ⁇ ".
const defaultUnkSurface = " \u2047 "

// pbField is one field of a serialized protobuf message.
type pbField struct {
	num  int
	wire int
	v    uint64 // varint, fixed32 and fixed64 values
	b    []byte // length-delimited value
}

// pbFields splits a serialized protobuf message into its fields. Groups
// (wire types 3 and 4) are rejected: ModelProto has none.
func pbFields(b []byte, visit func(f pbField) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad field key")
		}
		b = b[n:]
		f := pbField{num: int(key >> 3), wire: int(key & 7)}
		if key>>3 == 0 || key>>3 > math.MaxInt32 {
			return fmt.Errorf("bad field number %d", key>>3)
		}
		switch f.wire {
		case 0:
			f.v, n = binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("field %d: bad varint", f.num)
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return fmt.Errorf("field %d: truncated fixed64", f.num)
			}
			f.v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("field %d: bad length", f.num)
			}
			f.b, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return fmt.Errorf("field %d: truncated fixed32", f.num)
			}
			f.v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", f.num, f.wire)
		}
		if err := visit(f); err != nil {
			return err
		}
	}
	return nil
}

// wantWire checks a field's wire type.
func (f pbField) want(wire int) error {
	if f.wire != wire {
		return fmt.Errorf("field %d: wire type %d, want %d", f.num, f.wire, wire)
	}
	return nil
}

// int32 decodes an int32 varint (negative values are ten-byte varints).
func (f pbField) int32() int { return int(int32(f.v)) }

// parseSPModel decodes a serialized SentencePiece ModelProto.
func parseSPModel(b []byte) (*spModelProto, error) {
	m := &spModelProto{
		modelType: spModelUnigram, unkID: 0, bosID: 1, eosID: 2, padID: -1,
		unkSurface:     defaultUnkSurface,
		addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true,
	}
	err := pbFields(b, func(f pbField) error {
		switch f.num {
		case 1: // pieces
			if err := f.want(2); err != nil {
				return err
			}
			p, err := parseSPPiece(f.b)
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case 2: // trainer_spec
			if err := f.want(2); err != nil {
				return err
			}
			if err := m.parseTrainerSpec(f.b); err != nil {
				return fmt.Errorf("trainer_spec: %w", err)
			}
		case 3: // normalizer_spec
			if err := f.want(2); err != nil {
				return err
			}
			if err := m.parseNormalizerSpec(f.b); err != nil {
				return fmt.Errorf("normalizer_spec: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(m.pieces) == 0 {
		return nil, errors.New("no pieces")
	}
	return m, nil
}

func parseSPPiece(b []byte) (spPiece, error) {
	p := spPiece{typ: spNormal}
	err := pbFields(b, func(f pbField) error {
		switch f.num {
		case 1:
			if err := f.want(2); err != nil {
				return err
			}
			p.piece = string(f.b)
		case 2:
			if err := f.want(5); err != nil {
				return err
			}
			p.score = math.Float32frombits(uint32(f.v))
		case 3:
			if err := f.want(0); err != nil {
				return err
			}
			if f.v < 1 || f.v > 6 {
				return fmt.Errorf("unknown piece type %d", f.v)
			}
			p.typ = spPieceType(f.v)
		}
		return nil
	})
	if err == nil && p.piece == "" {
		err = errors.New("empty piece")
	}
	if err == nil && !utf8.ValidString(p.piece) {
		err = fmt.Errorf("piece %q is not UTF-8", p.piece)
	}
	return p, err
}

func (m *spModelProto) parseTrainerSpec(b []byte) error {
	return pbFields(b, func(f pbField) error {
		switch f.num {
		case 3, 24, 35, 40, 41, 42, 43:
			if err := f.want(0); err != nil {
				return err
			}
		case 44:
			if err := f.want(2); err != nil {
				return err
			}
		}
		switch f.num {
		case 3:
			m.modelType = f.int32()
		case 24:
			m.treatWhitespaceAsSuffix = f.v != 0
		case 35:
			m.byteFallback = f.v != 0
		case 40:
			m.unkID = f.int32()
		case 41:
			m.bosID = f.int32()
		case 42:
			m.eosID = f.int32()
		case 43:
			m.padID = f.int32()
		case 44:
			m.unkSurface = string(f.b)
		}
		return nil
	})
}

func (m *spModelProto) parseNormalizerSpec(b []byte) error {
	return pbFields(b, func(f pbField) error {
		switch f.num {
		case 1, 2:
			if err := f.want(2); err != nil {
				return err
			}
		case 3, 4, 5:
			if err := f.want(0); err != nil {
				return err
			}
		}
		switch f.num {
		case 1:
			m.normName = string(f.b)
		case 2:
			m.charsMap = f.b
		case 3:
			m.addDummyPrefix = f.v != 0
		case 4:
			m.removeExtraWhitespaces = f.v != 0
		case 5:
			m.escapeWhitespaces = f.v != 0
		}
		return nil
	})
}
