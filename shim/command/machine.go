package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
)

// machine is what the interpreter's handlers reach: the container's FS,
// clock and identity, in place of the host's.
type machine struct {
	env Env
	// notFound: a command the model does not know is "not found" (127)
	// and the run goes on, as in an interactive shell, instead of ending
	// the run with an UnknownCommandError.
	notFound bool
}

// call is one run of a utility.
type call struct {
	ctx    context.Context
	m      *machine
	hc     interp.HandlerContext
	name   string
	args   []string // without the name
	vars   expand.Environ
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	status int // of the last runStatus
}

// utility runs a modelled program and returns its exit status; an error
// (ctx's, or an UnknownCommandError) ends the whole run.
type utility func(c *call) (int, error)

func (m *machine) exec(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	c := &call{ctx: ctx, m: m, hc: hc, vars: hc.Env, stdin: hc.Stdin, stdout: hc.Stdout, stderr: hc.Stderr}
	err := c.run(args)
	if unknown, ok := errors.AsType[*UnknownCommandError](err); ok && m.notFound {
		fmt.Fprintf(c.stderr, "sh: %s: not found\n", unknown.Name)
		return interp.ExitStatus(127)
	}
	return err
}

// run runs args[0] as a program with args[1:].
func (c *call) run(args []string) error {
	c.name, c.args = path.Base(args[0]), args[1:]
	var code int
	var err error
	switch u, ok := utilities[c.name]; {
	case ok:
		code, err = u(c)
	case builtinPrograms[c.name]:
		err = c.hc.Builtin(c.ctx, append([]string{c.name}, c.args...))
		if status, ok := errors.AsType[interp.ExitStatus](err); ok {
			code, err = int(status), nil
		}
	default:
		if _, isShell := shells[c.name]; isShell {
			code, err = c.shell(args)
		} else {
			return &UnknownCommandError{Name: args[0]}
		}
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return interp.ExitStatus(uint8(code))
	}
	return nil
}

// shell runs a nested sh: its own program, in the same container.
func (c *call) shell(args []string) (int, error) {
	p := Parse(args)
	if !p.Modelled() && p.SyntaxError() == nil {
		return 0, &UnknownCommandError{Name: p.Unknown()[0]}
	}
	env := c.m.env
	env.Vars, env.Dir, env.Stdout, env.Stderr = nil, c.hc.Dir, c.stdout, c.stderr
	c.vars.Each(func(name string, vr expand.Variable) bool {
		if vr.Exported && vr.IsSet() {
			env.Vars = append(env.Vars, name+"="+vr.String())
		}
		return true
	})
	return p.Run(c.ctx, env)
}

// abs resolves a path against the working directory.
func (c *call) abs(name string) string {
	if path.IsAbs(name) {
		return path.Clean(name)
	}
	return path.Join(c.hc.Dir, name)
}

func (m *machine) abs(ctx context.Context, name string) string {
	if path.IsAbs(name) {
		return path.Clean(name)
	}
	return path.Join(interp.HandlerCtx(ctx).Dir, name)
}

// open serves the shell's redirections: errors read as sh prints them
// ("sh: can't create /x: Read-only file system").
func (m *machine) open(ctx context.Context, name string, flag int, perm os.FileMode) (io.ReadWriteCloser, error) {
	hc := interp.HandlerCtx(ctx)
	switch name {
	case "/dev/stdout":
		return nopCloser{w: hc.Stdout}, nil
	case "/dev/stderr":
		return nopCloser{w: hc.Stderr}, nil
	}
	f, err := m.fs().Open(m.abs(ctx, name), flag, perm)
	if err != nil {
		op := "sh: can't open"
		if flag&writeFlags != 0 {
			op = "sh: can't create"
		}
		return nil, &fs.PathError{Op: op, Path: name, Err: errText{errnoOf(err)}}
	}
	return f, nil
}

func (m *machine) stat(ctx context.Context, name string, _ bool) (fs.FileInfo, error) {
	return m.fs().Stat(m.abs(ctx, name))
}

func (m *machine) readDir(ctx context.Context, name string) ([]fs.DirEntry, error) {
	return m.fs().ReadDir(m.abs(ctx, name))
}

// access: everything exists is readable and executable by root; writes
// need a writable filesystem.
func (m *machine) access(ctx context.Context, name string, mode interp.AccessMode) error {
	p := m.abs(ctx, name)
	if _, err := m.fs().Stat(p); err != nil {
		return err
	}
	if mode&interp.AccessWrite != 0 {
		return m.fs().Writable(p)
	}
	return nil
}

func (m *machine) fs() FS { return m.env.FS }

type nopCloser struct{ w io.Writer }

func (n nopCloser) Read([]byte) (int, error)    { return 0, syscall.EBADF }
func (n nopCloser) Write(p []byte) (int, error) { return n.w.Write(p) }
func (n nopCloser) Close() error                { return nil }

// errnoOf is the errno an FS error carries (EIO if none).
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}

// errText prints an errno as the C library's strerror does ("No such file
// or directory"), keeping it matchable with errors.Is.
type errText struct{ errno syscall.Errno }

func (e errText) Error() string {
	s := e.errno.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (e errText) Unwrap() error { return e.errno }
