package configs

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ByteSize is a number of bytes. In the config it is written as a plain
// integer or as a string with a unit ("512KiB", "1MiB", "2GiB", "100MB"),
// because rates and limits like vm.dirty_bytes are unreadable as raw counts.
type ByteSize int64

// byteUnit returns the multiplier of a lower-cased unit. Both the SI units
// (powers of 1000) and the IEC units (powers of 1024) are accepted, the IEC
// ones also in the Kubernetes spelling ("Mi"). Bare "K", "M", "G" are left
// out on purpose: tools disagree on whether they mean 1000 or 1024.
func byteUnit(unit string) (int64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "tb":
		return 1e12, true
	case "kib", "ki":
		return 1 << 10, true
	case "mib", "mi":
		return 1 << 20, true
	case "gib", "gi":
		return 1 << 30, true
	case "tib", "ti":
		return 1 << 40, true
	}
	return 0, false
}

// ParseByteSize parses a byte count: digits with an optional fraction,
// optional spaces, and an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB,
// TiB, Ki, Mi, Gi, Ti; case-insensitive). A fractional result is rounded
// down to whole bytes.
func ParseByteSize(s string) (ByteSize, error) {
	in := strings.TrimSpace(s)
	end := 0
	for end < len(in) && (in[end] >= '0' && in[end] <= '9' || in[end] == '.') {
		end++
	}
	num, unit := in[:end], strings.TrimSpace(in[end:])
	if num == "" {
		return 0, fmt.Errorf("byte size %q: want a non-negative number with an optional unit such as 512KiB, 1MiB or 100MB", s)
	}
	mult, ok := byteUnit(strings.ToLower(unit))
	if !ok {
		return 0, fmt.Errorf("byte size %q: unknown unit %q (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)", s, unit)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("byte size %q: out of range", s)
		}
		return ByteSize(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("byte size %q: bad number %q", s, num)
	}
	// float64(math.MaxInt64) rounds up to 2^63, so >= is the safe bound.
	total := math.Floor(f * float64(mult))
	if total >= math.MaxInt64 {
		return 0, fmt.Errorf("byte size %q: out of range", s)
	}
	return ByteSize(total), nil
}

// Bytes returns the size as a byte count.
func (b ByteSize) Bytes() int64 { return int64(b) }

// String returns the size in the largest unit that divides it exactly, or
// as a plain count, so it parses back to the same value.
func (b ByteSize) String() string {
	// Largest unit first, so the output is the shortest exact spelling.
	units := [...]struct {
		name string
		n    int64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	}
	if b > 0 {
		for _, u := range units {
			if int64(b)%u.n == 0 {
				return strconv.FormatInt(int64(b)/u.n, 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText writes the String form, so JSON and TOML output is readable.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses the ParseByteSize form; the TOML decoder and flag
// packages call it.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Duration is a non-negative time.Duration that can also be "never", for a
// delay that never ends (a process that ignores SIGTERM).
type Duration time.Duration

// DurationNever is the "never" value. It is the largest duration, so code
// that forgets to check Never still waits, in effect, forever rather than
// not at all; scale it only after checking Never, as it overflows.
const DurationNever = Duration(math.MaxInt64)

const neverText = "never"

// ParseDuration parses a Go duration string ("0s", "30s", "1m30s") or
// "never". Negative durations are refused.
func ParseDuration(s string) (Duration, error) {
	if s == neverText {
		return DurationNever, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		// time's own error already quotes the input.
		return 0, fmt.Errorf(`%w (want a duration such as "30s" or "never")`, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q: must not be negative", s)
	}
	if Duration(d) == DurationNever {
		return 0, errors.New(`duration: the largest duration is reserved for "never"; write "never"`)
	}
	return Duration(d), nil
}

// Never reports whether the duration is "never".
func (d Duration) Never() bool { return d == DurationNever }

// Duration returns the duration; for "never" it is the largest
// time.Duration (see DurationNever).
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String returns the duration as Go writes it, or "never".
func (d Duration) String() string {
	if d.Never() {
		return neverText
	}
	return time.Duration(d).String()
}

// MarshalText writes the String form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses the ParseDuration form.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
