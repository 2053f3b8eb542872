// Package command interprets a container's command: it is the model of the
// process a fake container runs, with no real process behind it.
//
// A command is what the OCI spec's process.args say (the CRI command and
// args, or the image's entrypoint and cmd). `sh -c SCRIPT` (also bash, ash,
// dash) is parsed as a shell script (bash's grammar, a superset of sh's for
// what container scripts use) and run by an interpreter (mvdan.cc/sh's) whose every contact with the
// outside goes through this package: programs are the utilities modelled in
// utilities.go, files are an FS (the container's view: mounts, /etc, /proc/sys,
// what the command wrote), time is the project's clock. Any other command
// (`sleep 3600`, `/pause`, `nginx -g ...`) is run as one simple command.
//
// A command the model does not know is reported, statically by Parse when its
// name is a literal (Program.Unknown) and at run time otherwise
// (UnknownCommandError), so the caller can fall back to "runs until stopped".
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// ExitSyntax is the exit status of a shell that cannot parse its script.
const ExitSyntax = 2

// Program is a parsed container command.
type Program struct {
	args    []string
	file    *syntax.File
	params  []string // $0 and the positional parameters of sh -c
	syntax  error    // the script does not parse: running prints it, exits 2
	unknown []string
	// interactive: a shell with no -c, which reads its commands from
	// stdin (EOF at once when it has none).
	interactive bool
	lang        syntax.LangVariant
	// idle: see Idle.
	idle     bool
	idleFor  time.Duration
	idleEver bool
}

// UnknownCommandError is returned by Run when the program reaches a
// command the model does not know.
type UnknownCommandError struct{ Name string }

func (e *UnknownCommandError) Error() string {
	return fmt.Sprintf("command %q is not modelled", e.Name)
}

// shells are the programs whose -c script is interpreted. All parse with
// bash's grammar, a superset of sh's for what scripts use: the
// interpreter implements export, readonly and local as bash's declaration
// keywords only.
var shells = map[string]syntax.LangVariant{
	"sh": syntax.LangBash, "ash": syntax.LangBash, "dash": syntax.LangBash, "bash": syntax.LangBash,
}

// Parse reads a container command. It never fails: a script that does not
// parse gives a program that, like sh, prints the error and exits 2.
func Parse(args []string) *Program {
	p := &Program{args: args}
	if len(args) == 0 {
		p.unknown = []string{"(no command)"}
		return p
	}
	lang, isShell := shells[path.Base(args[0])]
	if !isShell {
		p.file = literalCall(args)
		p.unknown = unknownIn(p.file)
		p.idle, p.idleFor, p.idleEver = idleCall(args)
		return p
	}
	script, opts, params, ok := shellScript(args)
	if !ok {
		// sh with no -c reads its commands from stdin (kubectl exec -i
		// POD -- sh); with no stdin it reads EOF and exits 0.
		p.file = &syntax.File{}
		p.interactive, p.lang = true, lang
		return p
	}
	p.params = append(append(opts, "--"), params[1:]...)
	f, err := syntax.NewParser(syntax.Variant(lang)).Parse(strings.NewReader(script), params[0])
	if err != nil {
		p.syntax = err
		return p
	}
	p.file = f
	p.unknown = unknownIn(f)
	return p
}

// shellScript finds the script of `sh [-opts] -c SCRIPT [$0 [args...]]`;
// opts are the options the interpreter takes (-e, -u, -x, -f, -a, -o pipefail).
func shellScript(args []string) (script string, opts, params []string, ok bool) {
	i, hasC := 1, false
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || (a[0] != '-' && a[0] != '+') {
			break
		}
		if (a == "-o" || a == "+o") && i+1 < len(args) {
			if args[i+1] == "pipefail" || args[i+1] == "errexit" || args[i+1] == "nounset" || args[i+1] == "xtrace" {
				opts = append(opts, a, args[i+1])
			}
			i++
			continue
		}
		for _, l := range a[1:] {
			switch l {
			case 'c':
				hasC = true
			case 'a', 'e', 'f', 'n', 'u', 'x':
				opts = append(opts, string(a[0])+string(l))
			}
		}
	}
	if a := args[min(i, len(args)-1)]; a == "--" {
		i++
	}
	if !hasC || i >= len(args) {
		return "", nil, nil, false
	}
	params = args[i+1:]
	if len(params) == 0 {
		params = []string{args[0]}
	}
	return args[i], opts, params, true
}

// literalCall is the program of an exec-form command: one simple command
// whose words are taken as they are (no expansion, no globbing).
func literalCall(args []string) *syntax.File {
	call := &syntax.CallExpr{}
	for _, a := range args {
		call.Args = append(call.Args, &syntax.Word{Parts: []syntax.WordPart{&syntax.SglQuoted{Value: a}}})
	}
	return &syntax.File{Stmts: []*syntax.Stmt{{Cmd: call}}}
}

// idleCall recognises the exec-form commands that only wait: /pause,
// agnhost pause, and sleep with valid operands (sleep's own arithmetic:
// the operands add up; infinity never ends).
func idleCall(args []string) (ok bool, d time.Duration, forever bool) {
	switch name, ops := path.Base(args[0]), args[1:]; {
	case name == "pause" && len(ops) == 0, name == "agnhost" && len(ops) >= 1 && ops[0] == "pause":
		return true, 0, true
	case name == "sleep" && len(ops) > 0:
		for _, a := range ops {
			if a == "infinity" || a == "inf" {
				return true, 0, true
			}
			v, err := parseSeconds(a)
			if err != nil {
				return false, 0, false
			}
			d += v
		}
		return true, d, false
	}
	return false, 0, false
}

// Idle reports whether the program, once started, does nothing but wait:
// it writes nothing, reads nothing and exits 0 after d, or never (forever)
// unless it is stopped. Run would give the same; a caller can stand a
// timer in for it instead of an interpreter and the goroutine it blocks,
// which is most of what a pod's pause process and a `sleep 3600` container
// cost.
func (p *Program) Idle() (d time.Duration, forever, ok bool) {
	return p.idleFor, p.idleEver, p.idle
}

// Args is the command as given.
func (p *Program) Args() []string { return p.args }

// SyntaxError is the script's parse error, if any.
func (p *Program) SyntaxError() error { return p.syntax }

// Unknown lists the commands the program names literally that the model
// does not know (sorted, each once). Commands named by an expansion
// (`$CMD`) are only found at run time.
func (p *Program) Unknown() []string { return p.unknown }

// Modelled reports whether the whole program is known to the model.
func (p *Program) Modelled() bool { return len(p.unknown) == 0 }

// Env is what a run of a program sees of its container.
type Env struct {
	// Vars are the process's environment (KEY=value).
	Vars []string
	// Dir is the working directory ("" is /).
	Dir string
	// Hostname is the container's UTS hostname.
	Hostname string
	// FS is the container's filesystem view.
	FS FS
	// Clock is the only source of time: date prints its Now, sleep waits on
	// it.
	Clock clock.Clock
	// Init is the container's main command, for pgrep and pidof.
	Init []string
	// Stdin is what the process reads (an exec's or an attached stream);
	// nil reads EOF.
	Stdin io.Reader
	// Stdout and Stderr receive the output as it is written; nil discards.
	Stdout, Stderr io.Writer
}

// Run interprets the program until it ends or ctx is done. It returns the
// exit status; the error is ctx's when ctx ended the run, and an
// *UnknownCommandError when the run reached a command the model does not
// know (the status is then meaningless).
func (p *Program) Run(ctx context.Context, env Env) (code int, err error) {
	// A bug of the interpreter must not take the daemon down with it.
	defer func() {
		if r := recover(); r != nil {
			code, err = 0, fmt.Errorf("interpreter failed on %q: %v", p.args, r)
		}
	}()
	stdout, stderr := orDiscard(env.Stdout), orDiscard(env.Stderr)
	if p.syntax != nil {
		fmt.Fprintf(stderr, "%s: %s\n", p.shellName(), syntaxMessage(p.syntax))
		return ExitSyntax, nil
	}
	// The working directory is the container's, absolute in its view.
	env.Dir = path.Join("/", env.Dir)
	if env.Clock == nil {
		env.Clock = clock.Real()
	}
	if env.FS == nil {
		env.FS = NewView(ViewConfig{Hostname: env.Hostname}, env.Clock)
	}
	vars := append([]string{"HOME=/root", "UID=0", "EUID=0", "GID=0", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env.Vars...)
	if env.Hostname != "" {
		vars = append(vars, "HOSTNAME="+env.Hostname)
	}
	m := &machine{env: env, notFound: p.interactive && env.Stdin != nil}
	stdin := env.Stdin
	if p.interactive && env.Stdin != nil {
		// The shell reads its commands from the same stdin its commands
		// read, as sh does from its fd 0. The interpreter copies any stdin
		// that is not an *os.File into a pipe of its own from a goroutine
		// that would race the parser for the input; one pipe shared by both
		// means one reader at a time: the parser between commands, the
		// command while it runs.
		pr, closeStdin, err := sharedStdin(ctx, env.Stdin)
		if err != nil {
			return 0, fmt.Errorf("stdin of %q: %w", p.args, err)
		}
		defer closeStdin()
		stdin = pr
	}
	r, err := interp.New(
		interp.Env(expand.ListEnviron(vars...)),
		interp.Params(p.params...),
		interp.StdIO(stdin, stdout, stderr),
		interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return m.exec }),
		interp.OpenHandler(m.open),
		interp.StatHandler(m.stat),
		interp.ReadDirHandler2(m.readDir),
		interp.AccessHandler(m.access),
	)
	if err != nil {
		return 0, fmt.Errorf("start interpreter of %q: %w", p.args, err)
	}
	// Dir must exist on the host for interp.Dir; the container's working
	// directory is the model's, so set it after the checks.
	r.Dir = env.Dir
	if p.interactive && env.Stdin != nil {
		return p.runInteractive(ctx, r, stdin, stderr)
	}
	err = r.Run(ctx, p.file)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if code, ok := errors.AsType[interp.ExitStatus](err); ok {
		return int(code), nil
	}
	if err == nil {
		return 0, nil
	}
	var unknown *UnknownCommandError
	if errors.As(err, &unknown) {
		return 0, unknown
	}
	return 0, fmt.Errorf("run %q: %w", p.args, err)
}

// runInteractive is a shell reading its commands from stdin: each complete
// statement runs as it arrives; a command the model does not know is "not
// found" (127, machine.notFound) and the shell goes on, as sh does; exit or
// EOF ends it.
func (p *Program) runInteractive(ctx context.Context, r *interp.Runner, stdin io.Reader, stderr io.Writer) (int, error) {
	code := 0
	// One byte a read, as sh reads commands from a pipe, so that what
	// follows a command's line is left for the command to read.
	for stmts, perr := range syntax.NewParser(syntax.Variant(p.lang)).InteractiveSeq(byteReader{stdin}) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if perr != nil {
			fmt.Fprintf(stderr, "%s: %s\n", p.shellName(), strings.Replace(syntaxMessage(perr), "-c: ", "", 1))
			return ExitSyntax, nil
		}
		for _, st := range stmts {
			err := r.Run(ctx, st)
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			switch {
			case err == nil:
				code = 0
			default:
				c, ok := errors.AsType[interp.ExitStatus](err)
				if !ok {
					return 0, fmt.Errorf("run %q: %w", p.args, err)
				}
				code = int(c)
			}
			if r.Exited() {
				return code, nil
			}
		}
	}
	return code, nil
}

// byteReader reads at most one byte at a time.
type byteReader struct{ r io.Reader }

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return b.r.Read(p)
}

// sharedStdin copies in into an os.Pipe and returns its read end and the
// function that closes it; ctx's end closes it too, so that a read blocked
// on it returns.
func sharedStdin(ctx context.Context, in io.Reader) (*os.File, func(), error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	go func() {
		io.Copy(pw, in) // ends at in's EOF, or when pr is closed
		pw.Close()
	}()
	stop := context.AfterFunc(ctx, func() { pr.Close() })
	return pr, func() {
		if stop() {
			pr.Close()
		}
	}, nil
}

func (p *Program) shellName() string { return path.Base(p.args[0]) }

// syntaxMessage words a parse error the way sh does on its -c script.
func syntaxMessage(err error) string {
	var pe syntax.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("-c: line %d: syntax error: %s", pe.Pos.Line(), pe.Text)
	}
	var le syntax.LangError
	if errors.As(err, &le) {
		return fmt.Sprintf("-c: line %d: syntax error: %s", le.Pos.Line(), strings.TrimPrefix(le.Error(), le.Pos.String()+": "))
	}
	return "-c: syntax error: " + err.Error()
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
