package safetensors

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// entry returns the JSON of one tensor entry.
func entry(name, dtype, shape, offsets string) string {
	return `"` + name + `":{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":` + offsets + `}`
}

// TestOpenRejects builds one malformed file per validation rule and checks
// that Open rejects it with the rule's sentinel, in a one-line message that
// names the file and, where there is one, the tensor.
func TestOpenRejects(t *testing.T) {
	data8 := make([]byte, 8)
	lenOnly := func(n uint64, rest string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, n)
		return append(b, rest...)
	}
	tests := []struct {
		name   string
		file   []byte
		want   []error
		tensor string // tensor the message must name, if any
	}{
		{"empty file", nil, []error{ErrTruncated}, ""},
		{"shorter than 8 bytes", []byte{2, 0, 0, 0}, []error{ErrTruncated}, ""},
		{"header too large", lenOnly(MaxHeaderSize+1, "{}"), []error{ErrHeaderTooLarge}, ""},
		{"header length huge", lenOnly(1<<63+5, "{}"), []error{ErrHeaderTooLarge}, ""},
		{"header past end of file", lenOnly(100, `{"a":1}`), []error{ErrHeaderLength}, ""},
		{"invalid utf-8", rawFile("{\"bad\xff\":{}}", nil), []error{ErrInvalidUTF8}, ""},
		{"not an object", rawFile(`[1,2,3]`, nil), []error{ErrInvalidHeader}, ""},
		{"leading space", rawFile(` {}`, nil), []error{ErrInvalidHeader}, ""},
		{"empty header", rawFile(``, nil), []error{ErrInvalidHeader}, ""},
		{"bad json", rawFile(`{"a":{"dtype":"F32",}`, nil), []error{ErrInvalidHeader}, ""},
		{"garbage after object", rawFile(`{}x`, nil), []error{ErrInvalidHeader}, ""},
		{"two objects", rawFile(`{}{}`, nil), []error{ErrInvalidHeader}, ""},
		{"lone surrogate", rawFile(`{"a\ud800":{}}`, nil), []error{ErrInvalidHeader}, ""},
		{"metadata not object", rawFile(`{"__metadata__":["a"]}`, nil), []error{ErrMetadata}, ""},
		{"metadata null", rawFile(`{"__metadata__":null}`, nil), []error{ErrMetadata}, ""},
		{"metadata number value", rawFile(`{"__metadata__":{"epoch":3}}`, nil), []error{ErrMetadata}, ""},
		{"metadata object value", rawFile(`{"__metadata__":{"cfg":{}}}`, nil), []error{ErrMetadata}, ""},
		{"metadata duplicate key", rawFile(`{"__metadata__":{"k":"a","k":"b"}}`, nil), []error{ErrMetadata, ErrDuplicateName}, ""},
		{"metadata twice", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), []error{ErrMetadata, ErrDuplicateName}, ""},
		{"unknown dtype", rawFile(`{`+entry("bad.t", "F33", "[1]", "[0,4]")+`}`, data8[:4]), []error{ErrUnknownDType}, "bad.t"},
		{"lower-case dtype", rawFile(`{`+entry("bad.t", "f32", "[1]", "[0,4]")+`}`, data8[:4]), []error{ErrUnknownDType}, "bad.t"},
		{"dtype not a string", rawFile(`{"bad.t":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}`, data8[:4]), []error{ErrUnknownDType}, "bad.t"},
		{"F4 odd count", rawFile(`{`+entry("bad.t", "F4", "[3]", "[0,2]")+`}`, data8[:2]), []error{ErrShapeMismatch}, "bad.t"},
		{"F6 partial byte", rawFile(`{`+entry("bad.t", "F6_E2M3", "[2]", "[0,2]")+`}`, data8[:2]), []error{ErrShapeMismatch}, "bad.t"},
		{"negative dim", rawFile(`{`+entry("bad.t", "F32", "[-1]", "[0,4]")+`}`, data8[:4]), []error{ErrShapeMismatch}, "bad.t"},
		{"fractional dim", rawFile(`{`+entry("bad.t", "F32", "[1.5]", "[0,4]")+`}`, data8[:4]), []error{ErrShapeMismatch}, "bad.t"},
		{"float-syntax dim", rawFile(`{`+entry("bad.t", "F32", "[1.0]", "[0,4]")+`}`, data8[:4]), []error{ErrShapeMismatch}, "bad.t"},
		{"exponent dim", rawFile(`{`+entry("bad.t", "F32", "[1e0]", "[0,4]")+`}`, data8[:4]), []error{ErrShapeMismatch}, "bad.t"},
		{"string dim", rawFile(`{`+entry("bad.t", "F32", `["1"]`, "[0,4]")+`}`, data8[:4]), []error{ErrShapeMismatch}, "bad.t"},
		{"shape not array", rawFile(`{`+entry("bad.t", "F32", `4`, "[0,4]")+`}`, data8[:4]), []error{ErrShapeMismatch}, "bad.t"},
		{"element count overflow", rawFile(`{`+entry("bad.t", "F32", "[4294967296,4294967296]", "[0,4]")+`}`, data8[:4]), []error{ErrOverflow}, "bad.t"},
		{"byte size overflow", rawFile(`{`+entry("bad.t", "F32", "[4611686018427387904]", "[0,4]")+`}`, data8[:4]), []error{ErrOverflow}, "bad.t"},
		{"dim beyond int64", rawFile(`{`+entry("bad.t", "U8", "[99999999999999999999]", "[0,4]")+`}`, data8[:4]), []error{ErrOverflow}, "bad.t"},
		{"size mismatch", rawFile(`{`+entry("bad.t", "F32", "[2,3]", "[0,20]")+`}`, make([]byte, 20)), []error{ErrShapeMismatch}, "bad.t"},
		{"zero-size shape, nonzero range", rawFile(`{`+entry("bad.t", "F32", "[0,3]", "[0,4]")+`}`, data8[:4]), []error{ErrShapeMismatch}, "bad.t"},
		{"offsets one entry", rawFile(`{`+entry("bad.t", "U8", "[4]", "[4]")+`}`, data8[:4]), []error{ErrOffsets}, "bad.t"},
		{"offsets three entries", rawFile(`{`+entry("bad.t", "U8", "[4]", "[0,4,4]")+`}`, data8[:4]), []error{ErrOffsets}, "bad.t"},
		{"offsets negative", rawFile(`{`+entry("bad.t", "U8", "[4]", "[-4,0]")+`}`, data8[:4]), []error{ErrOffsets}, "bad.t"},
		{"offsets fractional", rawFile(`{`+entry("bad.t", "U8", "[4]", "[0,4.0]")+`}`, data8[:4]), []error{ErrOffsets}, "bad.t"},
		{"offsets begin > end", rawFile(`{`+entry("bad.t", "U8", "[4]", "[4,0]")+`}`, data8[:4]), []error{ErrOffsets}, "bad.t"},
		{"offsets not array", rawFile(`{`+entry("bad.t", "U8", "[4]", `"0-4"`)+`}`, data8[:4]), []error{ErrOffsets}, "bad.t"},
		{"offsets beyond int64", rawFile(`{`+entry("bad.t", "U8", "[4]", "[0,18446744073709551616]")+`}`, data8[:4]), []error{ErrOffsets}, "bad.t"},
		{"first range not at 0", rawFile(`{`+entry("bad.t", "U8", "[4]", "[4,8]")+`}`, data8), []error{ErrGap}, "bad.t"},
		{"gap between ranges", rawFile(`{`+entry("a", "U8", "[2]", "[0,2]")+`,`+entry("bad.t", "U8", "[4]", "[4,8]")+`}`, data8), []error{ErrGap}, "bad.t"},
		{"overlap", rawFile(`{`+entry("a", "U8", "[6]", "[0,6]")+`,`+entry("bad.t", "U8", "[4]", "[4,8]")+`}`, data8), []error{ErrOverlap}, "bad.t"},
		{"same range twice", rawFile(`{`+entry("a", "U8", "[8]", "[0,8]")+`,`+entry("bad.t", "U8", "[8]", "[0,8]")+`}`, data8), []error{ErrOverlap}, "bad.t"},
		{"trailing bytes", rawFile(`{`+entry("bad.t", "U8", "[4]", "[0,4]")+`}`, data8), []error{ErrTrailingBytes}, "bad.t"},
		{"data but no tensors", rawFile(`{}`, data8), []error{ErrTrailingBytes}, ""},
		{"range past end of file", rawFile(`{`+entry("a", "U8", "[4]", "[0,4]")+`,`+entry("bad.t", "U8", "[8]", "[4,12]")+`}`, data8), []error{ErrTruncated}, "bad.t"},
		{"duplicate tensor", rawFile(`{`+entry("bad.t", "U8", "[4]", "[0,4]")+`,`+entry("bad.t", "U8", "[4]", "[4,8]")+`}`, data8), []error{ErrDuplicateName}, "bad.t"},
		{"duplicate key in entry", rawFile(`{"bad.t":{"dtype":"U8","dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, data8[:4]), []error{ErrDuplicateName, ErrInvalidHeader}, "bad.t"},
		{"unknown key in entry", rawFile(`{"bad.t":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"offset":0}}`, data8[:4]), []error{ErrInvalidHeader}, "bad.t"},
		{"missing key", rawFile(`{"bad.t":{"dtype":"U8","shape":[4]}}`, data8[:4]), []error{ErrInvalidHeader}, "bad.t"},
		{"entry not an object", rawFile(`{"bad.t":[0,4]}`, data8[:4]), []error{ErrInvalidHeader}, "bad.t"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "bad.safetensors", tc.file)
			f, err := Open(path)
			if err == nil {
				f.Close()
			}
			var mentions []string
			mentions = append(mentions, path)
			if tc.tensor != "" {
				mentions = append(mentions, `"`+tc.tensor+`"`)
			}
			checkErr(t, err, tc.want, mentions...)
		})
	}
}

func TestErrorMessageExample(t *testing.T) {
	path := writeTemp(t, "m.safetensors", rawFile(`{`+entry("w", "F32", "[2,3]", "[0,20]")+`}`, make([]byte, 20)))
	_, err := Open(path)
	want := path + `: tensor "w": shape does not match data (shape [2 3] F32 needs 24 bytes, data_offsets [0, 20] have 20)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestErrorMessagesStayShort(t *testing.T) {
	long := strings.Repeat("x", 100000)
	_, err := ParseHeader([]byte(`{"`+long+`":{"dtype":"Q"}}`), 0)
	checkErr(t, err, []error{ErrUnknownDType}, `xxxx"...`)
	if len(err.Error()) > 400 {
		t.Errorf("message of %d bytes", len(err.Error()))
	}
	shape := "[" + strings.Repeat("1,", 5000) + "-1]"
	_, err = ParseHeader([]byte(`{"a":{"dtype":"U8","shape":`+shape+`,"data_offsets":[0,0]}}`), 0)
	checkErr(t, err, []error{ErrShapeMismatch})
	if len(err.Error()) > 400 {
		t.Errorf("message of %d bytes", len(err.Error()))
	}
	// A non-printable name is quoted, keeping the message on one line.
	_, err = ParseHeader([]byte(`{"a\nb":{"dtype":"Q"}}`), 0)
	checkErr(t, err, []error{ErrUnknownDType}, `"a\nb"`)
}

func TestParseHeaderValid(t *testing.T) {
	tests := []struct {
		name     string
		header   string
		dataSize int64
		want     Header
	}{
		{"empty", `{}`, 0, Header{}},
		{"empty padded", "{}      ", 0, Header{}},
		{"whitespace padding", "{ }\t\r\n ", 0, Header{}},
		{"empty metadata kept", `{"__metadata__":{}}`, 0, Header{Metadata: Metadata{}}},
		{
			"metadata order kept", `{"__metadata__":{"z":"1","a":"2","m":""}}`, 0,
			Header{Metadata: Metadata{{"z", "1"}, {"a", "2"}, {"m", ""}}},
		},
		{
			"scalar", `{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, 4,
			Header{Tensors: []TensorInfo{{Name: "s", DType: F32, Shape: []int64{}, Offset: 0, Size: 4}}},
		},
		{
			"sorted by offset, zero-size allowed",
			`{"c":{"dtype":"I64","shape":[1],"data_offsets":[6,14]},` +
				`"z1":{"dtype":"F16","shape":[0,5],"data_offsets":[6,6]},` +
				`"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},` +
				`"z2":{"dtype":"F32","shape":[0],"data_offsets":[6,6]},` +
				`"end":{"dtype":"BOOL","shape":[0],"data_offsets":[14,14]}}`,
			14,
			Header{Tensors: []TensorInfo{
				{Name: "a", DType: BF16, Shape: []int64{3}, Offset: 0, Size: 6},
				{Name: "z1", DType: F16, Shape: []int64{0, 5}, Offset: 6, Size: 0},
				{Name: "z2", DType: F32, Shape: []int64{0}, Offset: 6, Size: 0},
				{Name: "c", DType: I64, Shape: []int64{1}, Offset: 6, Size: 8},
				{Name: "end", DType: BOOL, Shape: []int64{0}, Offset: 14, Size: 0},
			}},
		},
		{
			"keys in any order, whitespace", `{ "t" : { "data_offsets" : [ 0 , 3 ] , "shape" : [ 4 ] , "dtype" : "F6_E3M2" } }`, 3,
			Header{Tensors: []TensorInfo{{Name: "t", DType: F6_E3M2, Shape: []int64{4}, Offset: 0, Size: 3}}},
		},
		{
			"sub-byte", `{"p":{"dtype":"F4","shape":[2,3],"data_offsets":[0,3]},"q":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[3,4]}}`, 4,
			Header{Tensors: []TensorInfo{
				{Name: "p", DType: F4, Shape: []int64{2, 3}, Offset: 0, Size: 3},
				{Name: "q", DType: F8_E8M0, Shape: []int64{1}, Offset: 3, Size: 1},
			}},
		},
		{
			"escaped names", `{"__metadata__":{"k\"\\\/":"\u00e9\ud83d\ude00\n"},"a\u0041\t":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}`, 8,
			Header{
				Metadata: Metadata{{"k\"\\/", "é😀\n"}},
				Tensors:  []TensorInfo{{Name: "aA\t", DType: C64, Shape: []int64{1}, Offset: 0, Size: 8}},
			},
		},
		{
			"empty tensor name", `{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1,
			Header{Tensors: []TensorInfo{{Name: "", DType: U8, Shape: []int64{1}, Offset: 0, Size: 1}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader([]byte(tc.header), tc.dataSize)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*h, tc.want) {
				t.Errorf("got  %#v\nwant %#v", *h, tc.want)
			}
		})
	}
}

func TestParseHeaderDoesNotAlias(t *testing.T) {
	buf := []byte(`{"__metadata__":{"k":"v"},"name":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`)
	h, err := ParseHeader(buf, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'X'
	}
	if h.Tensors[0].Name != "name" || h.Metadata[0] != (MetadataEntry{"k", "v"}) {
		t.Errorf("header aliases its input: %+v", h)
	}
}

func TestParseHeaderNegativeDataSize(t *testing.T) {
	_, err := ParseHeader([]byte(`{}`), -1)
	checkErr(t, err, []error{ErrTruncated})
}

func TestMetadata(t *testing.T) {
	m := Metadata{{"format", "pt"}, {"b", "1"}}
	if v, ok := m.Get("b"); !ok || v != "1" {
		t.Errorf("Get(b) = %q, %v", v, ok)
	}
	if _, ok := m.Get("x"); ok {
		t.Error("Get(x) found")
	}
	m2 := m.With("format", "np")
	if want := (Metadata{{"format", "np"}, {"b", "1"}}); !reflect.DeepEqual(m2, want) {
		t.Errorf("With replace = %v, want %v", m2, want)
	}
	m3 := m.With("c", "2")
	if want := (Metadata{{"format", "pt"}, {"b", "1"}, {"c", "2"}}); !reflect.DeepEqual(m3, want) {
		t.Errorf("With append = %v, want %v", m3, want)
	}
	if want := (Metadata{{"format", "pt"}, {"b", "1"}}); !reflect.DeepEqual(m, want) {
		t.Errorf("With modified its receiver: %v", m)
	}
	if got := Metadata(nil).With("a", "b"); !reflect.DeepEqual(got, Metadata{{"a", "b"}}) {
		t.Errorf("nil.With = %v", got)
	}
}

func TestDTypes(t *testing.T) {
	tests := []struct {
		d     DType
		bits  int
		float bool
	}{
		{BOOL, 8, false}, {U8, 8, false}, {I8, 8, false},
		{F8_E4M3, 8, true}, {F8_E5M2, 8, true}, {F8_E8M0, 8, true},
		{F4, 4, true}, {F6_E2M3, 6, true}, {F6_E3M2, 6, true},
		{I16, 16, false}, {U16, 16, false}, {F16, 16, true}, {BF16, 16, true},
		{I32, 32, false}, {U32, 32, false}, {F32, 32, true},
		{F64, 64, true}, {I64, 64, false}, {U64, 64, false}, {C64, 64, false},
		{"F33", 0, false}, {"", 0, false}, {"f32", 0, false},
	}
	for _, tc := range tests {
		if got := tc.d.Bits(); got != tc.bits {
			t.Errorf("%s.Bits() = %d, want %d", tc.d, got, tc.bits)
		}
		if got := tc.d.IsFloat(); got != tc.float {
			t.Errorf("%s.IsFloat() = %v, want %v", tc.d, got, tc.float)
		}
		if got := tc.d.Valid(); got != (tc.bits != 0) {
			t.Errorf("%s.Valid() = %v", tc.d, got)
		}
	}
	if n := len(DTypes()); n != 20 {
		t.Errorf("DTypes() has %d kinds, want 20", n)
	}
	for _, d := range DTypes() {
		if !d.Valid() {
			t.Errorf("DTypes() lists invalid %q", d)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		d     DType
		shape []int64
		want  int64
		err   error
	}{
		{F32, []int64{64, 192}, 49152, nil},
		{F32, []int64{}, 4, nil},
		{F32, nil, 4, nil},
		{BF16, []int64{3, 0, 7}, 0, nil},
		{C64, []int64{2}, 16, nil},
		{F4, []int64{2}, 1, nil},
		{F4, []int64{3}, 0, ErrShapeMismatch},
		{F4, []int64{0}, 0, nil},
		{F6_E2M3, []int64{4}, 3, nil},
		{F6_E2M3, []int64{8, 3}, 18, nil},
		{F6_E2M3, []int64{2}, 0, ErrShapeMismatch},
		{F6_E3M2, []int64{6}, 0, ErrShapeMismatch},
		{U8, []int64{-1}, 0, ErrShapeMismatch},
		{U8, []int64{1 << 62, 2}, 0, ErrOverflow},
		{U8, []int64{1 << 62, 1}, 1 << 62, nil},
		{U8, []int64{1 << 32, 1 << 31}, 0, ErrOverflow},
		{F64, []int64{1 << 60}, 0, ErrOverflow},
		{F4, []int64{1<<63 - 1}, 0, ErrShapeMismatch},
		{F4, []int64{1<<63 - 2}, (1<<63 - 2) / 2, nil},
		{F6_E2M3, []int64{1<<63 - 8}, (1<<63 - 8) / 8 * 6, nil},
		{F6_E2M3, []int64{1<<63 - 4}, (1<<63-8)/8*6 + 3, nil},
		{F6_E2M3, []int64{1<<63 - 7}, 0, ErrShapeMismatch},
		{U8, []int64{1 << 40, 1 << 30, 0}, 0, ErrOverflow}, // multiplied left to right, like the reference
		{"X", []int64{1}, 0, ErrUnknownDType},
	}
	for _, tc := range tests {
		got, err := tc.d.ByteSize(tc.shape)
		if tc.err != nil {
			checkErr(t, err, []error{tc.err})
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s.ByteSize(%v) = %d, %v; want %d", tc.d, tc.shape, got, err, tc.want)
		}
	}
	if n := (TensorInfo{Shape: []int64{2, 3, 4}}).NumElements(); n != 24 {
		t.Errorf("NumElements = %d, want 24", n)
	}
	if n := (TensorInfo{Shape: []int64{}}).NumElements(); n != 1 {
		t.Errorf("scalar NumElements = %d, want 1", n)
	}
	if n := (TensorInfo{Shape: []int64{-2}}).NumElements(); n != -1 {
		t.Errorf("bad NumElements = %d, want -1", n)
	}
}
