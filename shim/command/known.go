package command

import (
	"path"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// unknownIn lists the literal command names in f that neither the shell,
// the script's own functions nor the modelled utilities provide, and the
// constructs the model leaves out (process substitution, coprocesses,
// time).
func unknownIn(f *syntax.File) []string {
	funcs := map[string]bool{}
	syntax.Walk(f, func(n syntax.Node) bool {
		if fd, ok := n.(*syntax.FuncDecl); ok && fd.Name != nil {
			funcs[fd.Name.Value] = true
		}
		return true
	})
	var unknown []string
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.ProcSubst:
			unknown = append(unknown, "<(...) process substitution")
		case *syntax.CoprocClause:
			unknown = append(unknown, "coproc")
		case *syntax.TimeClause:
			// The interpreter would time it on the host's clock.
			unknown = append(unknown, "time")
		case *syntax.CallExpr:
			if name, ok := calledName(n.Args); ok && !known(name) && !funcs[name] {
				unknown = append(unknown, name)
			}
		}
		return true
	})
	slices.Sort(unknown)
	return slices.Compact(unknown)
}

// calledName is the program a simple command runs, looking through the
// wrappers that run their arguments (exec, command, env VAR=x, nohup). ok is
// false when the name is not a literal (only known at run time).
func calledName(words []*syntax.Word) (string, bool) {
	for i := 0; i < len(words); i++ {
		w := literal(words[i])
		if w == "" {
			return "", false
		}
		switch path.Base(w) {
		case "exec", "command", "nohup":
			continue
		case "env":
			for i+1 < len(words) {
				next := literal(words[i+1])
				if next == "" || !(strings.HasPrefix(next, "-") || strings.Contains(next, "=")) {
					break
				}
				i++
			}
			if i+1 < len(words) {
				continue
			}
		}
		return w, true
	}
	return "", false
}

// literal is a word's value when it has no expansions ("" otherwise).
func literal(w *syntax.Word) string {
	var b strings.Builder
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				lit, ok := q.(*syntax.Lit)
				if !ok {
					return ""
				}
				b.WriteString(lit.Value)
			}
		default:
			return ""
		}
	}
	return b.String()
}

// known reports whether a command name is run by the model: a builtin the
// interpreter implements, or a utility (by its base name, so /bin/true is
// true).
func known(name string) bool {
	base := path.Base(name)
	if _, ok := utilities[base]; ok {
		return true
	}
	if _, ok := shells[base]; ok {
		return true
	}
	return implementedBuiltins[base] && (base == name || builtinPrograms[base])
}

// implementedBuiltins are the interpreter's builtins that it implements
// (interp.IsBuiltin also names some it refuses, such as kill and umask).
var implementedBuiltins = map[string]bool{
	":": true, "true": true, "false": true, "help": true, "times": true, "exit": true, "set": true,
	"shift": true, "unset": true, "echo": true, "printf": true, "break": true, "continue": true,
	"pwd": true, "cd": true, "wait": true, "builtin": true, "type": true, "hash": true, "eval": true,
	"source": true, ".": true, "[": true, "test": true, "exec": true, "command": true, "dirs": true,
	"pushd": true, "popd": true, "return": true, "read": true, "getopts": true, "shopt": true,
	"alias": true, "unalias": true, "trap": true, "readarray": true, "mapfile": true,
	"export": true, "readonly": true, "local": true, "declare": true, "typeset": true, "let": true,
}

// builtinPrograms are the builtins that also exist as programs (/bin/true,
// /bin/echo, /usr/bin/test): run by path, they run as the builtin.
var builtinPrograms = map[string]bool{
	"true": true, "false": true, "echo": true, "printf": true, "test": true, "[": true, "pwd": true,
}
