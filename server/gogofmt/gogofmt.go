// Package gogofmt prints protobuf messages the way containerd 1.6 logs
// them. containerd 1.6's CRI plugin is built against gogo-protobuf types
// (k8s.io/cri-api v0.25, containerd's own api/events), and its log lines
// format requests and events with %+v, which calls the String() method
// gogo's stringer plugin generates: `&LinuxContainerResources{CpuPeriod:
// 100000,CpuQuota:0,...,Unified:map[string]string{},...,}`. The fake's
// types are google.golang.org/protobuf messages, whose String() is the
// protobuf text form, so a user grepping the fake's log for containerd's
// words would not find them. String walks the message by reflection and
// follows the stringer plugin's rules (vendor/k8s.io/cri-api/.../api.pb.go
// of containerd v1.6.20 is the reference):
//
//   - a nil message is "nil"; otherwise "&" + Go type name + "{", then
//     every field in declaration order as GoName:value, each followed by
//     ",", then "}";
//   - scalars as fmt's %v of the Go value (strings unquoted, enums by
//     name, bytes and repeated scalars as [a b c]);
//   - a message field by its own String();
//   - a repeated message field as "[]*Type{", then each element's
//     String() and a comma, then "}";
//   - a map as "map[K]V{" + "k: v," for each key in sorted order + "}".
//
// Fields the current schema has and cri-api v0.25 did not have are printed
// too (containerd 1.6 would not know them); that is the one difference.
package gogofmt

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// String is m as its gogo-generated String() method would print it.
func String(m proto.Message) string {
	if m == nil {
		return "nil"
	}
	var b strings.Builder
	writeMessage(&b, m.ProtoReflect())
	return b.String()
}

// Value is a formatting helper for log calls: its String is String(m),
// computed only when the log line is written.
type Value struct{ M proto.Message }

func (v Value) String() string { return String(v.M) }

// Slice is a []*T of messages as fmt's %v prints it in containerd's log
// lines ("returns containers %+v"): "[" + elements' String() joined by
// spaces + "]".
func Slice[T proto.Message](ms []T) fmt.Stringer { return slice[T](ms) }

type slice[T proto.Message] []T

func (s slice[T]) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, m := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		writeMessage(&b, m.ProtoReflect())
	}
	b.WriteByte(']')
	return b.String()
}

// TaskExit is containerd 1.6's api/events TaskExit as its String() prints
// it. That type is gogo with stdtime (ExitedAt is a time.Time, printed by
// time.Time's String) and keeps XXX_unrecognized, which %v prints as [].
func TaskExit(containerID, id string, pid, exitStatus uint32, exitedAt time.Time) string {
	return fmt.Sprintf("&TaskExit{ContainerID:%s,ID:%s,Pid:%d,ExitStatus:%d,ExitedAt:%s,XXX_unrecognized:[],}",
		containerID, id, pid, exitStatus, exitedAt)
}

// TaskOOM is the same for api/events TaskOOM.
func TaskOOM(containerID string) string {
	return fmt.Sprintf("&TaskOOM{ContainerID:%s,XXX_unrecognized:[],}", containerID)
}

func writeMessage(b *strings.Builder, m protoreflect.Message) {
	if !m.IsValid() {
		b.WriteString("nil")
		return
	}
	d := m.Descriptor()
	b.WriteString("&")
	b.WriteString(goTypeName(d))
	b.WriteString("{")
	fields := d.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		b.WriteString(GoName(fd.Name()))
		b.WriteString(":")
		switch {
		case fd.IsMap():
			writeMap(b, fd, m.Get(fd).Map())
		case fd.IsList():
			writeList(b, fd, m.Get(fd).List())
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if m.Has(fd) {
				writeMessage(b, m.Get(fd).Message())
			} else {
				b.WriteString("nil")
			}
		default:
			b.WriteString(scalar(fd, m.Get(fd)))
		}
		b.WriteString(",")
	}
	b.WriteString("}")
}

func writeList(b *strings.Builder, fd protoreflect.FieldDescriptor, l protoreflect.List) {
	if fd.Kind() == protoreflect.MessageKind {
		b.WriteString("[]*" + goTypeName(fd.Message()) + "{")
		for i := 0; i < l.Len(); i++ {
			writeMessage(b, l.Get(i).Message())
			b.WriteString(",")
		}
		b.WriteString("}")
		return
	}
	// fmt's %v of a []T: elements separated by spaces.
	b.WriteString("[")
	for i := 0; i < l.Len(); i++ {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(scalar(fd, l.Get(i)))
	}
	b.WriteString("]")
}

func writeMap(b *strings.Builder, fd protoreflect.FieldDescriptor, mp protoreflect.Map) {
	kd, vd := fd.MapKey(), fd.MapValue()
	b.WriteString("map[" + goType(kd) + "]" + goType(vd) + "{")
	type entry struct {
		k protoreflect.MapKey
		v protoreflect.Value
	}
	var es []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		es = append(es, entry{k, v})
		return true
	})
	// gogo sorts keys with its sortkeys package: by value for every key
	// kind (strings lexically, numbers numerically, false before true).
	sort.Slice(es, func(i, j int) bool { return keyLess(es[i].k, es[j].k) })
	for _, e := range es {
		b.WriteString(scalar(kd, e.k.Value()))
		b.WriteString(": ")
		if vd.Kind() == protoreflect.MessageKind {
			writeMessage(b, e.v.Message())
		} else {
			b.WriteString(scalar(vd, e.v))
		}
		b.WriteString(",")
	}
	b.WriteString("}")
}

func keyLess(a, b protoreflect.MapKey) bool {
	switch x := a.Interface().(type) {
	case string:
		return x < b.String()
	case bool:
		return !x && b.Bool()
	case int32, int64:
		return a.Int() < b.Int()
	default:
		return a.Uint() < b.Uint()
	}
}

// scalar is fmt's %v of the Go value of a non-message field.
func scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprint(int32(v.Enum()))
	case protoreflect.BytesKind:
		return fmt.Sprint(v.Bytes())
	case protoreflect.FloatKind:
		return fmt.Sprint(float32(v.Float()))
	default:
		return fmt.Sprint(v.Interface())
	}
}

// goType is the Go type of a map key or value, as in "map[string]string".
func goType(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "string"
	case protoreflect.BoolKind:
		return "bool"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "int32"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "int64"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "uint32"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "uint64"
	case protoreflect.FloatKind:
		return "float32"
	case protoreflect.DoubleKind:
		return "float64"
	case protoreflect.BytesKind:
		return "[]byte"
	case protoreflect.EnumKind:
		return goTypeName(fd.Enum())
	default:
		return "*" + goTypeName(fd.Message())
	}
}

// goTypeName is the generated Go name of a message or enum: nested types
// are joined to their parents with "_".
func goTypeName(d protoreflect.Descriptor) string {
	name := GoName(d.Name())
	for p := d.Parent(); p != nil; p = p.Parent() {
		if _, ok := p.(protoreflect.MessageDescriptor); !ok {
			break
		}
		name = GoName(p.Name()) + "_" + name
	}
	return name
}

// GoName is protoc-gen-go's (and gogo's) CamelCase of a proto name:
// "memory_limit_in_bytes" is MemoryLimitInBytes, "cpuset_cpus" CpusetCpus.
func GoName(name protoreflect.Name) string {
	s := string(name)
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' && i == 0:
			b = append(b, 'X')
		case c == '_' && i+1 < len(s) && isLower(s[i+1]):
			// The underscore goes; the next letter is capitalised below.
		case c >= '0' && c <= '9':
			b = append(b, c)
		default:
			if isLower(c) {
				c -= 'a' - 'A'
			}
			b = append(b, c)
			for ; i+1 < len(s) && isLower(s[i+1]); i++ {
				b = append(b, s[i+1])
			}
		}
	}
	return string(b)
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
