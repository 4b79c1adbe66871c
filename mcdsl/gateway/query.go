package gateway

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// strictQuery is grpc-gateway's query parser, except that a parameter that
// names no field of the request is an error instead of being ignored: a
// misspelt filter must not silently list everything.
type strictQuery struct{ runtime.DefaultQueryParser }

var mapKeyRE = regexp.MustCompile(`^(.*)\[(.*)\]$`)

func (q strictQuery) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	for key := range values {
		field := key
		if m := mapKeyRE.FindStringSubmatch(key); m != nil {
			field = m[1]
		}
		if !knownField(msg.ProtoReflect().Descriptor(), strings.Split(field, ".")) {
			return fmt.Errorf("query parameter %q is not a field of this request", key)
		}
	}
	return q.DefaultQueryParser.Parse(msg, values, filter)
}

func knownField(md protoreflect.MessageDescriptor, path []string) bool {
	for i, name := range path {
		if md == nil {
			return false
		}
		f := md.Fields().ByTextName(name)
		if f == nil {
			f = md.Fields().ByJSONName(name)
		}
		if f == nil {
			return false
		}
		if i < len(path)-1 {
			md = f.Message()
		}
	}
	return true
}
