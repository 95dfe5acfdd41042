package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/ssmax/ssmax/safetensors"
)

// Config is a config.json object kept whole: every key, in its original
// order, with its value as raw JSON, so a rewrite preserves what ssmax does
// not understand. Typed views (arch.Detect) decode the fields they need.
type Config struct {
	keys   []string
	values map[string]json.RawMessage
}

// ErrConfig reports a config.json that is not a JSON object.
var ErrConfig = errors.New("invalid config")

// ParseConfig parses a JSON object, keeping key order. Duplicate keys are an
// error: the file would mean different things to different readers.
func ParseConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrConfig)
	}
	c := &Config{values: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%w: object key is not a string", ErrConfig)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrConfig, key, err)
		}
		if _, dup := c.values[key]; dup {
			return nil, fmt.Errorf("%w: duplicate key %q", ErrConfig, key)
		}
		c.keys = append(c.keys, key)
		c.values[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrConfig)
	}
	return c, nil
}

// ReadConfig reads and parses a config.json file.
func ReadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Keys returns the keys in file order.
func (c *Config) Keys() []string { return append([]string(nil), c.keys...) }

// Has reports whether key is present (even with a null value).
func (c *Config) Has(key string) bool {
	_, ok := c.values[key]
	return ok
}

// Raw returns the raw JSON value of key, or nil when absent.
func (c *Config) Raw(key string) json.RawMessage { return c.values[key] }

// Decode decodes the value of key into v. It reports false when the key is
// absent or null.
func (c *Config) Decode(key string, v any) (bool, error) {
	raw, ok := c.values[key]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("config key %q: %w", key, err)
	}
	return true, nil
}

// Unmarshal decodes the whole object into v (a struct with json tags).
func (c *Config) Unmarshal(v any) error {
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// Set sets key to the JSON encoding of value, in place when the key exists,
// appended otherwise.
func (c *Config) Set(key string, value any) error {
	raw, err := marshalNoEscape(value)
	if err != nil {
		return fmt.Errorf("config key %q: %w", key, err)
	}
	if _, ok := c.values[key]; !ok {
		c.keys = append(c.keys, key)
	}
	c.values[key] = raw
	return nil
}

// Delete removes key if present.
func (c *Config) Delete(key string) {
	if _, ok := c.values[key]; !ok {
		return
	}
	delete(c.values, key)
	for i, k := range c.keys {
		if k == key {
			c.keys = append(c.keys[:i:i], c.keys[i+1:]...)
			break
		}
	}
}

// Clone returns an independent copy.
func (c *Config) Clone() *Config {
	d := &Config{keys: append([]string(nil), c.keys...), values: make(map[string]json.RawMessage, len(c.values))}
	for k, v := range c.values {
		d.values[k] = append(json.RawMessage(nil), v...)
	}
	return d
}

// Marshal encodes the object with keys in order, indented with two spaces
// like the files transformers writes, ending with a newline.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range c.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, err := marshalNoEscape(k)
		if err != nil {
			return nil, err
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(c.values[k])
	}
	buf.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Int returns the first of keys that is present and non-null as an int.
func (c *Config) Int(keys ...string) (int, bool, error) {
	for _, k := range keys {
		var n json.Number
		ok, err := c.Decode(k, &n)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != float64(int64(f)) {
				return 0, false, fmt.Errorf("config key %q: %s is not an integer", k, n)
			}
			v = int64(f)
		}
		return int(v), true, nil
	}
	return 0, false, nil
}

// Float returns the first of keys that is present and non-null as a float64.
func (c *Config) Float(keys ...string) (float64, bool, error) {
	for _, k := range keys {
		var n json.Number
		ok, err := c.Decode(k, &n)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			continue
		}
		v, err := n.Float64()
		if err != nil {
			return 0, false, fmt.Errorf("config key %q: %w", k, err)
		}
		return v, true, nil
	}
	return 0, false, nil
}

// String returns the first of keys that is present and non-null as a string.
func (c *Config) String(keys ...string) (string, bool, error) {
	for _, k := range keys {
		var s string
		ok, err := c.Decode(k, &s)
		if err != nil {
			return "", false, err
		}
		if ok {
			return s, true, nil
		}
	}
	return "", false, nil
}

// Bool returns the first of keys that is present and non-null as a bool.
func (c *Config) Bool(keys ...string) (bool, bool, error) {
	for _, k := range keys {
		var b bool
		ok, err := c.Decode(k, &b)
		if err != nil {
			return false, false, err
		}
		if ok {
			return b, true, nil
		}
	}
	return false, false, nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// dtypeKeys are the config.json keys naming the weights' dtype:
// transformers v4's torch_dtype and v5's dtype.
var dtypeKeys = []string{"torch_dtype", "dtype"}

// TorchDType is the name transformers uses in config.json for a float
// dtype ("float32", "float16", "bfloat16"), or "" for others.
func TorchDType(dt safetensors.DType) string {
	switch dt {
	case safetensors.F32:
		return "float32"
	case safetensors.F16:
		return "float16"
	case safetensors.BF16:
		return "bfloat16"
	case safetensors.F64:
		return "float64"
	}
	return ""
}

// SetDType records that the weights are now stored as dt, under whichever
// of torch_dtype and dtype the config already spells (a config with
// neither is left alone).
func (c *Config) SetDType(dt safetensors.DType) error {
	name := TorchDType(dt)
	if name == "" {
		return fmt.Errorf("config: %s is not a float dtype", dt)
	}
	for _, key := range dtypeKeys {
		if c.Has(key) {
			if err := c.Set(key, name); err != nil {
				return err
			}
		}
	}
	return nil
}
