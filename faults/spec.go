// Package faults is fakecontainerd's fault injection and its fix toggles.
//
// A fault is a spec in containerd's failpoint grammar, extended: terms
// joined by "->", each "[count*][percent%]action", where action is off,
// delay(d[, jitter]), error(code[, message]), block, panic(message) or
// exit(status). A term with a count runs that many times before the next
// term; the last term repeats. Examples:
//
//	2*error(Unavailable)->delay(1s)->off
//	30%delay(2s, 500ms)
//	block
//	1*exit(137)->off
//
// Faults fire at named points placed where the real delay or failure
// happens (see points.go) and match a target (see selector.go). Every
// package may import faults; faults imports none of them.
package faults

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

// Kind is what a term does when it fires.
type Kind string

const (
	KindOff   Kind = "off"
	KindDelay Kind = "delay"
	KindError Kind = "error"
	KindBlock Kind = "block"
	KindPanic Kind = "panic"
	// KindExit makes the target's process exit now with a status, as if
	// it died there (exit(137): kill -9); see Injector.SetExitHandler.
	KindExit Kind = "exit"
)

// Term is one step of a spec.
type Term struct {
	Count   int     // 0: repeats forever (only the last term may)
	Percent float64 // chance of acting, 0 < p <= 100; 100 if not given
	Kind    Kind
	Delay   time.Duration
	Jitter  time.Duration
	Code    codes.Code
	Message string
	// ExitStatus is exit's status, 0 to 255 (128 + n for signal n).
	ExitStatus uint32
	// implicit marks a count of 1 that was not written, so String gives
	// back what was parsed.
	implicit bool
}

func (t Term) String() string {
	var b strings.Builder
	if t.Count > 0 && !t.implicit {
		fmt.Fprintf(&b, "%d*", t.Count)
	}
	if t.Percent < 100 {
		fmt.Fprintf(&b, "%s%%", strconv.FormatFloat(t.Percent, 'g', -1, 64))
	}
	switch t.Kind {
	case KindDelay:
		if t.Jitter > 0 {
			fmt.Fprintf(&b, "delay(%s, %s)", t.Delay, t.Jitter)
		} else {
			fmt.Fprintf(&b, "delay(%s)", t.Delay)
		}
	case KindError:
		if t.Message != "" {
			fmt.Fprintf(&b, "error(%s, %s)", codeName(t.Code), t.Message)
		} else {
			fmt.Fprintf(&b, "error(%s)", codeName(t.Code))
		}
	case KindPanic:
		fmt.Fprintf(&b, "panic(%s)", t.Message)
	case KindExit:
		fmt.Fprintf(&b, "exit(%d)", t.ExitStatus)
	default:
		b.WriteString(string(t.Kind))
	}
	return b.String()
}

// Spec is a parsed fault spec.
type Spec []Term

func (s Spec) String() string {
	parts := make([]string, len(s))
	for i, t := range s {
		parts[i] = t.String()
	}
	return strings.Join(parts, "->")
}

// maxSpecLength bounds what the admin API and annotations may send.
const maxSpecLength = 4096

// ParseSpec parses a fault spec. Errors say which term is wrong and why.
func ParseSpec(s string) (Spec, error) {
	if len(s) > maxSpecLength {
		return nil, fmt.Errorf("fault spec: longer than %d bytes", maxSpecLength)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("fault spec: empty")
	}
	raw := strings.Split(s, "->")
	spec := make(Spec, 0, len(raw))
	for i, r := range raw {
		t, err := parseTerm(strings.TrimSpace(r))
		if err != nil {
			return nil, fmt.Errorf("fault spec %q: term %d %q: %w", s, i+1, strings.TrimSpace(r), err)
		}
		// Only the last term repeats forever; an uncounted term that
		// another follows fires once (so "2*error(X)->delay(1s)->off"
		// delays once, then turns off).
		if t.Count == 0 && i != len(raw)-1 {
			t.Count = 1
			t.implicit = true
		}
		spec = append(spec, t)
	}
	return spec, nil
}

func parseTerm(s string) (Term, error) {
	t := Term{Percent: 100}
	// Prefixes "N*" and "P%", in either order (fail(9) writes P% first).
	for range 2 {
		i := strings.IndexAny(s, "*%")
		if i < 0 || strings.Contains(s[:i], "(") {
			break
		}
		num := strings.TrimSpace(s[:i])
		if s[i] == '*' {
			if t.Count != 0 {
				return t, fmt.Errorf("two counts")
			}
			n, err := strconv.Atoi(num)
			if err != nil || n < 1 {
				return t, fmt.Errorf("count %q: must be a whole number of at least 1", num)
			}
			t.Count = n
		} else {
			if t.Percent != 100 {
				return t, fmt.Errorf("two percentages")
			}
			p, err := strconv.ParseFloat(num, 64)
			if err != nil || p <= 0 || p > 100 {
				return t, fmt.Errorf("percent %q: must be in (0, 100]", num)
			}
			t.Percent = p
		}
		s = strings.TrimSpace(s[i+1:])
	}
	name, args, err := splitCall(s)
	if err != nil {
		return t, err
	}
	t.Kind = Kind(name)
	switch t.Kind {
	case KindOff, KindBlock:
		if args != nil {
			return t, fmt.Errorf("%s takes no arguments", name)
		}
	case KindDelay:
		if len(args) < 1 || len(args) > 2 {
			return t, fmt.Errorf("delay takes a duration and an optional jitter, e.g. delay(2s) or delay(2s, 500ms)")
		}
		if t.Delay, err = parseDuration(args[0]); err != nil {
			return t, fmt.Errorf("delay: %w", err)
		}
		if len(args) == 2 {
			if t.Jitter, err = parseDuration(args[1]); err != nil {
				return t, fmt.Errorf("delay jitter: %w", err)
			}
		}
	case KindError:
		if len(args) < 1 {
			return t, fmt.Errorf("error takes a gRPC code and an optional message, e.g. error(Unavailable) or error(Unknown, disk full)")
		}
		c, ok := parseCode(args[0])
		if !ok {
			return t, fmt.Errorf("error: %q is not a gRPC code name (Unknown, Unavailable, DeadlineExceeded, NotFound, ...)", args[0])
		}
		if c == codes.OK {
			return t, fmt.Errorf("error: OK is not an error")
		}
		t.Code = c
		if len(args) > 1 {
			t.Message = strings.Join(args[1:], ", ")
		}
	case KindPanic:
		t.Message = strings.Join(args, ", ")
		if t.Message == "" {
			t.Message = "injected panic"
		}
	case KindExit:
		if len(args) != 1 {
			return t, fmt.Errorf("exit takes an exit status or a signal, e.g. exit(137), exit(KILL) or exit(1)")
		}
		if t.ExitStatus, err = parseExitStatus(args[0]); err != nil {
			return t, fmt.Errorf("exit: %w", err)
		}
	default:
		return t, fmt.Errorf("unknown action %q: want off, delay, error, block, panic or exit", name)
	}
	return t, nil
}

// splitCall splits "name(a, b)" into name and args; "name" gives nil args.
func splitCall(s string) (string, []string, error) {
	open := strings.Index(s, "(")
	if open < 0 {
		if s == "" {
			return "", nil, fmt.Errorf("missing action")
		}
		return s, nil, nil
	}
	if !strings.HasSuffix(s, ")") {
		return "", nil, fmt.Errorf("missing closing parenthesis")
	}
	name := strings.TrimSpace(s[:open])
	inner := s[open+1 : len(s)-1]
	if strings.TrimSpace(inner) == "" {
		return name, []string{}, nil
	}
	var args []string
	for _, a := range strings.Split(inner, ",") {
		args = append(args, strings.TrimSpace(a))
	}
	return name, args, nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 500ms, 2s or 1m30s", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// parseExitStatus reads exit's argument: a status 0..255, or a signal name
// (KILL, SIGTERM), which is a death by that signal: 128 + its number, as
// the shim reports it.
func parseExitStatus(s string) (uint32, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 255 {
			return 0, fmt.Errorf("status %d: must be 0 to 255", n)
		}
		return uint32(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return 128 + uint32(sig), nil
	}
	return 0, fmt.Errorf("%q is neither an exit status (0 to 255) nor a signal name (KILL, TERM, ...)", s)
}

func parseCode(s string) (codes.Code, bool) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if strings.EqualFold(c.String(), s) {
			return c, true
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= int(codes.Unauthenticated) {
		return codes.Code(n), true
	}
	return 0, false
}

func codeName(c codes.Code) string { return c.String() }
