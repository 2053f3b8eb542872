package shim

import (
	"bytes"
	"io"
)

// An exec with a terminal gets what a pty's default line discipline does
// to its streams, so an interactive `kubectl exec -it POD -- sh` behaves:
// input CR is NL (ICRNL), input is echoed (ECHO), ^D at the start of a read
// is EOF (VEOF), and output NL is CR NL (ONLCR). No line editing, no
// signals from ^C, no window size (ResizePty is ignored).

// ttyInput is the terminal's input side.
type ttyInput struct {
	r    io.Reader
	echo io.Writer
	eof  bool
}

func (t *ttyInput) Read(p []byte) (int, error) {
	if t.eof {
		return 0, io.EOF
	}
	n, err := t.r.Read(p)
	if i := bytes.IndexByte(p[:n], 0x04); i >= 0 {
		n, t.eof = i, true
		if n == 0 {
			return 0, io.EOF
		}
	}
	for i := range p[:n] {
		if p[i] == '\r' {
			p[i] = '\n'
		}
	}
	if n > 0 {
		t.echo.Write(p[:n])
	}
	return n, err
}

// ttyOutput is the terminal's output side.
type ttyOutput struct{ w io.WriteCloser }

func (t *ttyOutput) Write(p []byte) (int, error) {
	if _, err := t.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *ttyOutput) Close() error { return t.w.Close() }
