package model

import (
	"fmt"
	"unsafe"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/kernels"
	"github.com/ssmax/ssmax/safetensors"
)

// How weights get into memory. Tensors are read with pread (File.ReadAt),
// never through the checkpoint's mapping: pages of a mapping that were read
// stay resident, and counted in the process's memory, until the file is
// closed, so decoding through it would hold each weight twice while the
// model loads. A BF16 or F16 matrix is read as is into a []uint16 the model
// owns and wrapped in a kernels.Weight (frozen, see Load); an F32 tensor is
// read straight into its float32 values; other tensors (vectors in 16-bit
// dtypes, F64) are decoded.

// loadParam reads the tensor t described by ts.
func loadParam(t checkpoint.Tensor, ts arch.TensorSpec) (*Param, error) {
	if wdt, ok := weightDType(t.DType); ok && len(ts.Shape) == 2 && littleEndian {
		raw := make([]uint16, t.NumElements())
		if err := readRaw(t, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(raw))), 2*len(raw))); err != nil {
			return nil, err
		}
		rows, cols := int(ts.Shape[0]), int(ts.Shape[1])
		np := &nn.Param{Matrix: kernels.NewWeight16(rows, cols, wdt, raw)}
		return &Param{Param: np, Name: ts.Name, Role: ts.Role, Layer: ts.Layer, StoredShape: ts.Shape, DType: t.DType}, nil
	}
	var vals []float32
	if t.DType == safetensors.F32 && littleEndian {
		vals = make([]float32, t.NumElements())
		if err := readRaw(t, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(vals))), 4*len(vals))); err != nil {
			return nil, err
		}
	} else {
		var err error
		if vals, err = t.File.Float32s(t.Name); err != nil {
			return nil, err
		}
	}
	p := newParam(ts, vals)
	p.DType = t.DType
	return p, nil
}

// readRaw reads t's bytes into buf (len(buf) == t.Size).
func readRaw(t checkpoint.Tensor, buf []byte) error {
	if int64(len(buf)) != t.Size {
		return fmt.Errorf("%s: tensor %s: %d bytes for %d values of %s", t.File.Path(), t.Name, t.Size, t.NumElements(), t.DType)
	}
	if len(buf) == 0 {
		return nil
	}
	_, err := t.File.ReadAt(buf, t.Offset)
	if err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	return nil
}

// weightDType is the kernels dtype of a 16-bit safetensors dtype.
func weightDType(dt safetensors.DType) (kernels.WeightDType, bool) {
	switch dt {
	case safetensors.BF16:
		return kernels.WeightBF16, true
	case safetensors.F16:
		return kernels.WeightF16, true
	}
	return 0, false
}

// littleEndian: the files' little-endian values can be read in place.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// storedBytes returns a stored weight's values in the checkpoint's layout
// and byte order (the rows put back in stored order where the engine
// reorders them).
func (p *Param) storedBytes(w *kernels.Weight) []byte {
	raw := w.Raw16()
	if p.rowOrder != nil {
		out := make([]uint16, len(raw))
		unit := len(raw) / len(p.rowOrder)
		for r, from := range p.rowOrder {
			copy(out[from*unit:(from+1)*unit], raw[r*unit:(r+1)*unit])
		}
		raw = out
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(raw))), 2*len(raw))
}

var _ mat.Tensor = (*kernels.Weight)(nil)
