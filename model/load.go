package model

import (
	"fmt"
	"unsafe"

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

// loadTensor is a tensor to load and what the spec says of it.
type loadTensor struct {
	t  checkpoint.Tensor
	ts arch.TensorSpec
	// reordered: the engine permutes its rows (so it cannot be a view).
	reordered bool
}

// storedKind reports whether the tensor is held as a kernels.Weight in its
// stored dtype, and which: 16-bit matrices always, F32 matrices of an
// inference model (they will not train either).
func storedKind(lt loadTensor, opts Options) (kernels.WeightDType, bool) {
	if len(lt.ts.Shape) != 2 || !littleEndian {
		return 0, false
	}
	if wdt, ok := weightDType(lt.t.DType); ok {
		return wdt, true
	}
	if lt.t.DType == safetensors.F32 && opts.Inference {
		return kernels.WeightF32, true
	}
	return 0, false
}

// loadParams reads the tensors. Stored weights view c's mapping when own
// is set and their bytes are aligned (viewed reports that one does);
// otherwise they are read into one off-heap arena.
func loadParams(c *checkpoint.Checkpoint, tensors []loadTensor, opts Options, own bool) (ps []*Param, viewed bool, err error) {
	views := make([][]byte, len(tensors))
	size := 0
	for i, lt := range tensors {
		wdt, ok := storedKind(lt, opts)
		if !ok {
			continue
		}
		if own && !lt.reordered {
			if b, err := lt.t.File.Bytes(lt.t.Name); err == nil && aligned(b, wdt) {
				views[i] = b
				viewed = true
				continue
			}
		}
		size += int(lt.t.Size+7) &^ 7
	}
	var owned *checkpoint.Checkpoint
	if viewed {
		owned = c
	}
	arena, err := newArena(size, owned)
	if err != nil {
		return nil, false, err
	}
	for i, lt := range tensors {
		t, ts := lt.t, lt.ts
		wdt, ok := storedKind(lt, opts)
		if !ok {
			p, err := loadFloat32(t, ts)
			if err != nil {
				return nil, viewed, err
			}
			ps = append(ps, p)
			continue
		}
		b := views[i]
		if b == nil {
			b = arena.take(int(t.Size))
			if err := readRaw(t, b); err != nil {
				return nil, viewed, err
			}
		}
		rows, cols := int(ts.Shape[0]), int(ts.Shape[1])
		var w *kernels.Weight
		if wdt == kernels.WeightF32 {
			w = kernels.NewWeightF32(rows, cols, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4), arena)
		} else {
			w = kernels.NewWeight16(rows, cols, wdt, unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2), arena)
		}
		ps = append(ps, &Param{Param: &nn.Param{Matrix: w}, Name: ts.Name, Role: ts.Role, Layer: ts.Layer, StoredShape: ts.Shape, DType: t.DType})
	}
	return ps, viewed, nil
}

// aligned reports whether b can be viewed as values of dt.
func aligned(b []byte, dt kernels.WeightDType) bool {
	if len(b) == 0 {
		return false
	}
	size := uintptr(2)
	if dt == kernels.WeightF32 {
		size = 4
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))%size == 0
}

// loadFloat32 reads the tensor t described by ts as a float32 parameter.
func loadFloat32(t checkpoint.Tensor, ts arch.TensorSpec) (*Param, error) {
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
	if w.DType() == kernels.WeightF32 {
		v := p.StoredValues(w.RawF32())
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
	}
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
