package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var (
	marshalOpts   = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	unmarshalOpts = protojson.UnmarshalOptions{}
)

// jsonMarshaler is protojson with the platform's conventions.
type jsonMarshaler struct {
	maxBody int64
}

var _ runtime.Marshaler = jsonMarshaler{}

func (jsonMarshaler) ContentType(any) string { return "application/json" }

// Marshal writes m as JSON, one line.
func (jsonMarshaler) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("rest gateway: cannot marshal %T (only messages are answers)", v)
	}
	b, err := marshalOpts.Marshal(m)
	if err != nil {
		return nil, err
	}
	if has64(m.ProtoReflect().Descriptor()) {
		if b, err = numbers64(b, m.ProtoReflect().Descriptor()); err != nil {
			return nil, err
		}
	}
	// protojson varies its whitespace from build to build on purpose;
	// answers are compact, the same bytes every time.
	var out bytes.Buffer
	out.Grow(len(b) + 1)
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Unmarshal reads one JSON message strictly: unknown fields and trailing
// data are errors.
func (jsonMarshaler) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		// A rule whose body is one field of the request hands in a pointer
		// to that field: **Message for a message field.
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Pointer {
			return fmt.Errorf("rest gateway: cannot unmarshal into %T", v)
		}
		fresh := reflect.New(rv.Elem().Type().Elem())
		if m, ok = fresh.Interface().(proto.Message); !ok {
			return fmt.Errorf("rest gateway: cannot unmarshal into %T", v)
		}
		defer rv.Elem().Set(fresh)
	}
	if err := unmarshalOpts.Unmarshal(data, m); err != nil {
		return errors.New("request body: " + strings.TrimPrefix(err.Error(), "proto: "))
	}
	return nil
}

// NewDecoder reads the whole (bounded) body; an empty body is io.EOF, which
// the generated handlers take as "no fields set".
func (j jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return fmt.Errorf("request body is larger than %d bytes", mbe.Limit)
			}
			return fmt.Errorf("request body: %w", err)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF
		}
		err = j.Unmarshal(data, v)
		if err != nil && trailing(data) {
			return errors.New("request body: trailing data after the JSON value")
		}
		return err
	})
}

// trailing reports whether data is one valid JSON value followed by more:
// protojson refuses that with a message about an unexpected token, and
// the caller deserves to be told what is wrong.
func trailing(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	var first json.RawMessage
	if err := dec.Decode(&first); err != nil {
		return false
	}
	_, err := dec.Token()
	return !errors.Is(err, io.EOF)
}

func (j jsonMarshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := j.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

// The proto3 JSON mapping writes 64-bit integers as strings; the platform's
// REST contract has always written numbers (record and rule IDs), and Go,
// curl and jq users expect them. numbers64 rewrites those fields, guided by
// the descriptor, for the messages that have any.

var has64Cache sync.Map // protoreflect.FullName -> bool

func is64(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return true
	}
	return false
}

// wellKnown messages have their own JSON forms and are left alone.
func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}

func has64(md protoreflect.MessageDescriptor) bool {
	if v, ok := has64Cache.Load(md.FullName()); ok {
		return v.(bool) //nolint:errcheck,forcetypeassert // only bools are stored
	}
	v := has64Walk(md, map[protoreflect.FullName]bool{})
	has64Cache.Store(md.FullName(), v)
	return v
}

func has64Walk(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if wellKnown(md) || seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.IsMap() {
			f = f.MapValue()
		}
		if is64(f.Kind()) {
			return true
		}
		if f.Message() != nil && has64Walk(f.Message(), seen) {
			return true
		}
	}
	return false
}

func numbers64(b []byte, md protoreflect.MessageDescriptor) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	fix64Message(v, md)
	return json.Marshal(v)
}

func fix64Message(v any, md protoreflect.MessageDescriptor) {
	obj, ok := v.(map[string]any)
	if !ok || wellKnown(md) {
		return
	}
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		val, ok := obj[f.TextName()]
		if !ok || val == nil {
			continue
		}
		switch {
		case f.IsMap():
			if m, ok := val.(map[string]any); ok {
				for k, e := range m {
					m[k] = fix64Value(e, f.MapValue())
				}
			}
		case f.IsList():
			if l, ok := val.([]any); ok {
				for k, e := range l {
					l[k] = fix64Value(e, f)
				}
			}
		default:
			obj[f.TextName()] = fix64Value(val, f)
		}
	}
}

func fix64Value(v any, f protoreflect.FieldDescriptor) any {
	if is64(f.Kind()) {
		if s, ok := v.(string); ok {
			return json.Number(s)
		}
		return v
	}
	if f.Message() != nil {
		fix64Message(v, f.Message())
	}
	return v
}
