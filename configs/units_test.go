package configs

import (
	"math"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "1MiB", want: 1 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "2GiB", want: 2 << 30},
		{in: "1TiB", want: 1 << 40},
		{in: "100MB", want: 100_000_000},
		{in: "1KB", want: 1000},
		{in: "3GB", want: 3_000_000_000},
		{in: "7B", want: 7},
		{in: "64Mi", want: 64 << 20},
		{in: "1mib", want: 1 << 20},
		{in: " 200 MiB ", want: 200 << 20},
		{in: "1.5KiB", want: 1536},
		{in: "1.500000", want: 1}, // a TOML float, as the decoder formats it
		{in: "0.5B", want: 0},
		{in: "8EiB", wantErr: true}, // unit not known
		{in: "8388608TiB", wantErr: true},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "9223372036854775808", wantErr: true},
		{in: "10000000000GB", wantErr: true},
		{in: "1e30", wantErr: true},
		{in: "", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "-1MiB", wantErr: true},
		{in: "+1MiB", wantErr: true},
		{in: "1M", wantErr: true}, // ambiguous: 1000 or 1024
		{in: "1K", wantErr: true},
		{in: "1 XB", wantErr: true},
		{in: "1.2.3MiB", wantErr: true},
		{in: ".", wantErr: true},
		{in: "1MiB extra", wantErr: true},
		{in: "9999999999999999999999.5TiB", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseByteSize(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if got.Bytes() != int64(tt.want) {
			t.Errorf("Bytes() = %d, want %d", got.Bytes(), tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1536, "1536"},
		{1 << 20, "1MiB"},
		{200 << 20, "200MiB"},
		{2 << 30, "2GiB"},
		{100_000_000, "100MB"},
		{3 << 40, "3TiB"},
		{1 << 50, "1024TiB"},
		{-5, "-5"},
		{math.MaxInt64, "9223372036854775807"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in < 0 {
			continue
		}
		// String is written so that it parses back.
		back, err := ParseByteSize(tt.in.String())
		if err != nil || back != tt.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in.String(), back, err, tt.in)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in        string
		want      time.Duration
		wantNever bool
		wantErr   bool
	}{
		{in: "0s", want: 0},
		{in: "0", want: 0},
		{in: "30s", want: 30 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "never", wantNever: true, want: math.MaxInt64},
		{in: "Never", wantErr: true},
		{in: "30", wantErr: true},
		{in: "-1s", wantErr: true},
		{in: "", wantErr: true},
		{in: "forever", wantErr: true},
		{in: "2562047h47m16.854775807s", wantErr: true}, // reserved for never
		{in: "9999999h", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", tt.in, err)
			continue
		}
		if got.Never() != tt.wantNever || got.Duration() != tt.want {
			t.Errorf("ParseDuration(%q) = never %v, %v; want never %v, %v", tt.in, got.Never(), got.Duration(), tt.wantNever, tt.want)
		}
		// String parses back to the same value.
		back, err := ParseDuration(got.String())
		if err != nil || back != got {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got.String(), back, err, got)
		}
	}
}

func TestTextUnmarshalers(t *testing.T) {
	var b ByteSize
	if err := b.UnmarshalText([]byte("4KiB")); err != nil || b != 4096 {
		t.Errorf("ByteSize.UnmarshalText = %d, %v", b, err)
	}
	if err := b.UnmarshalText([]byte("4 furlongs")); err == nil {
		t.Error("ByteSize.UnmarshalText accepted a bad unit")
	}
	if b != 4096 {
		t.Errorf("a failed UnmarshalText changed the value to %d", b)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("never")); err != nil || !d.Never() {
		t.Errorf("Duration.UnmarshalText(never) = %v, %v", d, err)
	}
	if text, err := d.MarshalText(); err != nil || string(text) != "never" {
		t.Errorf("Duration.MarshalText = %q, %v", text, err)
	}
}
