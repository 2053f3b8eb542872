package command

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
)

// utilities are the programs the model runs, by base name. Their messages
// and exit statuses are busybox's (the image most probes and e2e tests
// use). Network clients find nothing listening: the model has no servers.
var utilities map[string]utility

func init() {
	utilities = map[string]utility{
		"date": date, "sleep": sleep, "cat": cat, "ls": ls, "env": env, "printenv": printenv,
		"hostname": hostname, "sysctl": sysctl, "tail": tail, "head": head, "touch": touch,
		"rm": rm, "mkdir": mkdir, "grep": grep, "wc": wc, "tee": tee, "cp": cp, "mv": mv,
		"chmod": exists, "chown": exists, "sync": succeed, "which": which, "uname": uname,
		"id": id, "whoami": whoami, "basename": basename, "dirname": dirname, "seq": seq,
		"pgrep": pgrep, "pidof": pidof, "timeout": timeoutCmd,
		"pause": pause, "nc": netcat, "wget": wget, "curl": curl,
		"grpc_health_probe": grpcHealthProbe, "redis-cli": redisCLI, "pg_isready": pgIsReady,
		"mysqladmin": mysqladmin, "agnhost": agnhost,
	}
}

// failf prints "name: message" on stderr and returns code.
func (c *call) failf(code int, format string, args ...any) (int, error) {
	fmt.Fprintf(c.stderr, "%s: %s\n", c.name, fmt.Sprintf(format, args...))
	return code, nil
}

// flags splits leading -abc options (each letter once) from operands; a
// letter in withValue takes the next word (or the rest of its word).
func flags(args []string, withValue string) (map[byte]string, []string) {
	set := map[byte]string{}
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return set, args[1:]
		}
		if len(a) < 2 || a[0] != '-' || a == "-" {
			break
		}
		args = args[1:]
		for i := 1; i < len(a); i++ {
			if strings.IndexByte(withValue, a[i]) >= 0 {
				switch {
				case i+1 < len(a):
					set[a[i]] = a[i+1:]
				case len(args) > 0:
					set[a[i]], args = args[0], args[1:]
				}
				break
			}
			set[a[i]] = ""
		}
	}
	return set, args
}

func has(set map[byte]string, letters string) bool {
	for i := range len(letters) {
		if _, ok := set[letters[i]]; ok {
			return true
		}
	}
	return false
}

func succeed(*call) (int, error) { return 0, nil }

// date prints the project clock's time, in UTC (containers carry no zone).
func date(c *call) (int, error) {
	set, ops := flags(c.args, "dI")
	now := c.m.env.Clock.Now().UTC()
	format := "%a %b %e %H:%M:%S %Z %Y"
	if has(set, "R") {
		format = "%a, %d %b %Y %H:%M:%S %z"
	}
	if spec, ok := set['I']; ok {
		format = "%Y-%m-%d"
		switch spec {
		case "seconds":
			format = "%Y-%m-%dT%H:%M:%S%:z"
		case "minutes", "hours":
			format = "%Y-%m-%dT%H:%M%:z"
		case "ns":
			format = "%Y-%m-%dT%H:%M:%S,%N%:z"
		}
	}
	if v, ok := set['d']; ok {
		if strings.HasPrefix(v, "@") {
			secs, err := strconv.ParseInt(v[1:], 10, 64)
			if err != nil {
				return c.failf(1, "invalid date '%s'", v)
			}
			now = time.Unix(secs, 0).UTC()
		} else {
			return c.failf(1, "invalid date '%s'", v)
		}
	}
	for _, op := range ops {
		if f, ok := strings.CutPrefix(op, "+"); ok {
			format = f
		}
	}
	fmt.Fprintln(c.stdout, strftime(now, format))
	return 0, nil
}

// strftime formats the conversions date(1) scripts use.
func strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		if format[i] == ':' && i+1 < len(format) && format[i+1] == 'z' {
			i++
			b.WriteString(t.Format("-07:00"))
			continue
		}
		switch format[i] {
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'c':
			b.WriteString(t.Format("Mon Jan _2 15:04:05 2006"))
		case 'C':
			fmt.Fprintf(&b, "%02d", t.Year()/100)
		case 'd':
			b.WriteString(t.Format("02"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'e':
			b.WriteString(t.Format("_2"))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'H':
			b.WriteString(t.Format("15"))
		case 'I':
			b.WriteString(t.Format("03"))
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'k':
			fmt.Fprintf(&b, "%2d", t.Hour())
		case 'l':
			fmt.Fprintf(&b, "%2d", (t.Hour()+11)%12+1)
		case 'm':
			b.WriteString(t.Format("01"))
		case 'M':
			b.WriteString(t.Format("04"))
		case 'n':
			b.WriteByte('\n')
		case 'N':
			fmt.Fprintf(&b, "%09d", t.Nanosecond())
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'r':
			b.WriteString(t.Format("03:04:05 PM"))
		case 'R':
			b.WriteString(t.Format("15:04"))
		case 's':
			fmt.Fprintf(&b, "%d", t.Unix())
		case 'S':
			b.WriteString(t.Format("05"))
		case 't':
			b.WriteByte('\t')
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'u':
			fmt.Fprintf(&b, "%d", (int(t.Weekday())+6)%7+1)
		case 'w':
			fmt.Fprintf(&b, "%d", int(t.Weekday()))
		case 'y':
			b.WriteString(t.Format("06"))
		case 'Y':
			fmt.Fprintf(&b, "%d", t.Year())
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

// sleep waits on the project clock; ctx (a stop, a kill, an exec timeout)
// cuts it.
func sleep(c *call) (int, error) {
	if len(c.args) == 0 {
		return c.failf(1, "missing operand")
	}
	var total time.Duration
	for _, a := range c.args {
		if a == "infinity" || a == "inf" {
			<-c.ctx.Done()
			return 0, c.ctx.Err()
		}
		d, err := parseSeconds(a)
		if err != nil {
			return c.failf(1, "invalid number '%s'", a)
		}
		total += d
	}
	if err := c.m.env.Clock.Sleep(c.ctx, total); err != nil {
		return 0, err
	}
	return 0, nil
}

// parseSeconds reads sleep's and timeout's NUMBER[smhd].
func parseSeconds(s string) (time.Duration, error) {
	unit := time.Second
	switch {
	case strings.HasSuffix(s, "s"):
		s = s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		s, unit = s[:len(s)-1], time.Minute
	case strings.HasSuffix(s, "h"):
		s, unit = s[:len(s)-1], time.Hour
	case strings.HasSuffix(s, "d"):
		s, unit = s[:len(s)-1], 24*time.Hour
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e9 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return time.Duration(f * float64(unit)), nil
}

// readAll reads a file of the view ("-" is stdin).
func (c *call) readAll(name string) ([]byte, error) {
	if name == "-" {
		if c.stdin == nil {
			return nil, nil
		}
		return io.ReadAll(c.stdin)
	}
	f, err := c.m.fs().Open(c.abs(name), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// inputs runs fn over each operand's content (stdin when there are none),
// printing "name: can't open 'x': error" for the ones that fail.
func (c *call) inputs(ops []string, fn func(name string, data []byte)) int {
	if len(ops) == 0 {
		ops = []string{"-"}
	}
	code := 0
	for _, op := range ops {
		data, err := c.readAll(op)
		if err != nil {
			fmt.Fprintf(c.stderr, "%s: can't open '%s': %s\n", c.name, op, errText{errnoOf(err)})
			code = 1
			continue
		}
		fn(op, data)
	}
	return code
}

func cat(c *call) (int, error) {
	_, ops := flags(c.args, "")
	if len(ops) == 0 && c.stdin != nil {
		// Stdin is copied as it comes, so an interactive `cat` echoes each
		// line (kubectl exec -i) rather than all of it at EOF.
		io.Copy(c.stdout, c.stdin)
		return 0, nil
	}
	code := c.inputs(ops, func(_ string, data []byte) { c.stdout.Write(data) })
	return code, nil
}

func ls(c *call) (int, error) {
	set, ops := flags(c.args, "")
	long, all := has(set, "l"), has(set, "aA")
	if len(ops) == 0 {
		ops = []string{"."}
	}
	code := 0
	var dirs []string
	for _, op := range ops {
		fi, err := c.m.fs().Stat(c.abs(op))
		if err != nil {
			fmt.Fprintf(c.stderr, "ls: %s: %s\n", op, errText{errnoOf(err)})
			code = 1
			continue
		}
		if fi.IsDir() && !has(set, "d") {
			dirs = append(dirs, op)
			continue
		}
		c.lsLine(fi, op, long)
	}
	for i, d := range dirs {
		entries, err := c.m.fs().ReadDir(c.abs(d))
		if err != nil {
			fmt.Fprintf(c.stderr, "ls: can't open '%s': %s\n", d, errText{errnoOf(err)})
			code = 1
			continue
		}
		if len(ops) > 1 {
			if i > 0 {
				fmt.Fprintln(c.stdout)
			}
			fmt.Fprintf(c.stdout, "%s:\n", d)
		}
		for _, e := range entries {
			if !all && strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			c.lsLine(fi, e.Name(), long)
		}
	}
	return code, nil
}

func (c *call) lsLine(fi fs.FileInfo, name string, long bool) {
	if !long {
		fmt.Fprintln(c.stdout, name)
		return
	}
	fmt.Fprintf(c.stdout, "%s %4d root     root     %8d %s %s\n", fi.Mode().String(), 1, fi.Size(), fi.ModTime().UTC().Format("Jan _2 15:04"), name)
}

// env prints the environment, or runs a command with a changed one.
func env(c *call) (int, error) {
	args := c.args
	var vars []string
	clearEnv := false
	for len(args) > 0 {
		switch a := args[0]; {
		case a == "-i" || a == "-":
			clearEnv = true
		case a == "-u" && len(args) > 1:
			args = args[1:]
			vars = append(vars, args[0]) // no '=': unset
		case strings.Contains(a, "=") && !strings.HasPrefix(a, "="):
			vars = append(vars, a)
		default:
			goto done
		}
		args = args[1:]
	}
done:
	current := c.environ()
	if clearEnv {
		current = nil
	}
	for _, kv := range vars {
		name, _, _ := strings.Cut(kv, "=")
		current = slices.DeleteFunc(current, func(e string) bool { return strings.HasPrefix(e, name+"=") })
		if strings.Contains(kv, "=") {
			current = append(current, kv)
		}
	}
	if len(args) == 0 {
		for _, kv := range current {
			fmt.Fprintln(c.stdout, kv)
		}
		return 0, nil
	}
	sub := *c
	sub.vars = expand.ListEnviron(current...)
	if err := sub.runStatus(args); err != nil {
		return 0, err
	}
	return sub.status, nil
}

// environ is the exported environment, sorted.
func (c *call) environ() []string {
	var out []string
	c.vars.Each(func(name string, vr expand.Variable) bool {
		if vr.Exported && vr.IsSet() {
			out = append(out, name+"="+vr.String())
		}
		return true
	})
	slices.Sort(out)
	return out
}

func printenv(c *call) (int, error) {
	if len(c.args) == 0 {
		for _, kv := range c.environ() {
			fmt.Fprintln(c.stdout, kv)
		}
		return 0, nil
	}
	code := 0
	for _, name := range c.args {
		vr := c.vars.Get(name)
		if !vr.Exported || !vr.IsSet() {
			code = 1
			continue
		}
		fmt.Fprintln(c.stdout, vr.String())
	}
	return code, nil
}

func hostname(c *call) (int, error) {
	h := c.m.env.Hostname
	if h == "" {
		h = "localhost"
	}
	fmt.Fprintln(c.stdout, h)
	return 0, nil
}

// sysctl reads /proc/sys; writes fail, /proc/sys being read-only in a
// container.
func sysctl(c *call) (int, error) {
	set, ops := flags(c.args, "")
	if len(ops) == 0 {
		return c.failf(1, "no keys given")
	}
	code := 0
	for _, key := range ops {
		if name, _, isWrite := strings.Cut(key, "="); isWrite || has(set, "w") {
			fmt.Fprintf(c.stderr, "sysctl: error setting key '%s': %s\n", name, errText{errnoOf(c.m.fs().Writable(procSys))})
			code = 1
			continue
		}
		data, err := c.readAll(procSys + "/" + strings.ReplaceAll(key, ".", "/"))
		if err != nil {
			fmt.Fprintf(c.stderr, "sysctl: error: '%s' is an unknown key\n", key)
			code = 1
			continue
		}
		v := strings.TrimSuffix(string(data), "\n")
		if has(set, "n") {
			fmt.Fprintln(c.stdout, v)
		} else {
			fmt.Fprintf(c.stdout, "%s = %s\n", key, v)
		}
	}
	return code, nil
}

// lineCount reads -n N or -N.
func lineCount(args []string) (int, []string, error) {
	n := 10
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-n" && i+1 < len(args):
			i++
			a = "-n" + args[i]
			fallthrough
		case strings.HasPrefix(a, "-n"):
			v, err := strconv.Atoi(strings.TrimPrefix(a[2:], "+"))
			if err != nil {
				return 0, nil, fmt.Errorf("invalid number '%s'", a[2:])
			}
			n = v
		case len(a) > 1 && a[0] == '-' && a[1] >= '0' && a[1] <= '9':
			v, err := strconv.Atoi(a[1:])
			if err != nil {
				return 0, nil, fmt.Errorf("invalid number '%s'", a[1:])
			}
			n = v
		default:
			rest = append(rest, a)
		}
	}
	return n, rest, nil
}

func splitLines(data []byte) []string {
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// tail prints the last lines; -f then follows the file on the project
// clock (once a second) until the run ends, so `tail -f /dev/null` is a
// process that runs until stopped.
func tail(c *call) (int, error) {
	n, rest, err := lineCount(c.args)
	if err != nil {
		return c.failf(1, "%v", err)
	}
	set, ops := flags(rest, "")
	follow := has(set, "fF")
	if len(ops) == 0 {
		ops = []string{"-"}
	}
	code := c.inputs(ops, func(_ string, data []byte) {
		lines := splitLines(data)
		for _, l := range lines[max(0, len(lines)-n):] {
			fmt.Fprintln(c.stdout, l)
		}
	})
	if !follow {
		return code, nil
	}
	name := ops[len(ops)-1]
	seen := -1
	for {
		if name != "-" {
			if data, err := c.readAll(name); err == nil {
				if seen >= 0 && len(data) > seen {
					c.stdout.Write(data[seen:])
				}
				seen = len(data)
			}
		}
		if err := c.m.env.Clock.Sleep(c.ctx, time.Second); err != nil {
			return 0, err
		}
	}
}

func head(c *call) (int, error) {
	n, ops, err := lineCount(c.args)
	if err != nil {
		return c.failf(1, "%v", err)
	}
	code := c.inputs(ops, func(_ string, data []byte) {
		lines := splitLines(data)
		for _, l := range lines[:min(n, len(lines))] {
			fmt.Fprintln(c.stdout, l)
		}
	})
	return code, nil
}

func touch(c *call) (int, error) {
	_, ops := flags(c.args, "")
	if len(ops) == 0 {
		return c.failf(1, "missing operand")
	}
	code := 0
	for _, op := range ops {
		f, err := c.m.fs().Open(c.abs(op), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(c.stderr, "touch: %s: %s\n", op, errText{errnoOf(err)})
			code = 1
			continue
		}
		f.Close()
	}
	return code, nil
}

func rm(c *call) (int, error) {
	set, ops := flags(c.args, "")
	force, recursive := has(set, "f"), has(set, "rR")
	if len(ops) == 0 && !force {
		return c.failf(1, "missing operand")
	}
	code := 0
	for _, op := range ops {
		p := c.abs(op)
		fi, err := c.m.fs().Stat(p)
		if err != nil {
			if !force {
				fmt.Fprintf(c.stderr, "rm: can't remove '%s': %s\n", op, errText{errnoOf(err)})
				code = 1
			}
			continue
		}
		if fi.IsDir() && !recursive {
			fmt.Fprintf(c.stderr, "rm: '%s' is a directory\n", op)
			code = 1
			continue
		}
		if err := c.removeAll(p, fi.IsDir()); err != nil {
			fmt.Fprintf(c.stderr, "rm: can't remove '%s': %s\n", op, errText{errnoOf(err)})
			code = 1
		}
	}
	return code, nil
}

func (c *call) removeAll(p string, dir bool) error {
	if dir {
		entries, err := c.m.fs().ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := c.removeAll(path.Join(p, e.Name()), e.IsDir()); err != nil {
				return err
			}
		}
	}
	return c.m.fs().Remove(p)
}

func mkdir(c *call) (int, error) {
	set, ops := flags(c.args, "m")
	parents := has(set, "p")
	if len(ops) == 0 {
		return c.failf(1, "missing operand")
	}
	code := 0
	for _, op := range ops {
		p := c.abs(op)
		todo := []string{p}
		if parents {
			todo = nil
			for q := p; q != "/"; q = path.Dir(q) {
				todo = append([]string{q}, todo...)
			}
		}
		for _, q := range todo {
			if parents {
				if fi, err := c.m.fs().Stat(q); err == nil && fi.IsDir() {
					continue
				}
			}
			if err := c.m.fs().Mkdir(q, 0o755); err != nil {
				fmt.Fprintf(c.stderr, "mkdir: can't create directory '%s': %s\n", op, errText{errnoOf(err)})
				code = 1
				break
			}
		}
	}
	return code, nil
}

// grep matches with Go's regexp (RE2): basic and extended patterns
// without back-references.
func grep(c *call) (int, error) {
	set, ops := flags(c.args, "e")
	pattern, hasE := set['e']
	if !hasE {
		if len(ops) == 0 {
			return c.failf(2, "usage: grep [-qvicFE] PATTERN [FILE]...")
		}
		pattern, ops = ops[0], ops[1:]
	}
	if has(set, "F") {
		pattern = regexp.QuoteMeta(pattern)
	} else if !has(set, "E") {
		// Basic regexps: \| \( \) \{ \} \+ \? are the operators, the bare
		// characters literals.
		r := strings.NewReplacer(`\|`, `|`, `\(`, `(`, `\)`, `)`, `\{`, `{`, `\}`, `}`, `\+`, `+`, `\?`, `?`,
			`|`, `\|`, `(`, `\(`, `)`, `\)`, `{`, `\{`, `}`, `\}`, `+`, `\+`, `?`, `\?`)
		pattern = r.Replace(pattern)
	}
	if has(set, "i") {
		pattern = "(?i)" + pattern
	}
	if has(set, "w") {
		pattern = `\b(?:` + pattern + `)\b`
	}
	if has(set, "x") {
		pattern = `^(?:` + pattern + `)$`
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return c.failf(2, "bad regex '%s'", pattern)
	}
	quiet, invert, count := has(set, "q"), has(set, "v"), has(set, "c")
	matched := false
	code := c.inputs(ops, func(name string, data []byte) {
		n := 0
		for _, line := range splitLines(data) {
			if re.MatchString(line) == invert {
				continue
			}
			matched, n = true, n+1
			if quiet || count {
				continue
			}
			if len(ops) > 1 {
				fmt.Fprintf(c.stdout, "%s:", name)
			}
			fmt.Fprintln(c.stdout, line)
		}
		if count && !quiet {
			fmt.Fprintln(c.stdout, n)
		}
	})
	switch {
	case matched:
		return 0, nil
	case code != 0 && !has(set, "s"):
		return 2, nil
	}
	return 1, nil
}

func wc(c *call) (int, error) {
	set, ops := flags(c.args, "")
	code := c.inputs(ops, func(name string, data []byte) {
		counts := map[byte]int{'l': bytes.Count(data, []byte("\n")), 'w': len(strings.Fields(string(data))), 'c': len(data)}
		var out []string
		for _, k := range []byte("lwc") {
			if len(set) == 0 || has(set, string(k)) {
				out = append(out, strconv.Itoa(counts[k]))
			}
		}
		if name != "-" {
			out = append(out, name)
		}
		fmt.Fprintln(c.stdout, strings.Join(out, " "))
	})
	return code, nil
}

func tee(c *call) (int, error) {
	set, ops := flags(c.args, "")
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if has(set, "a") {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	writers := []io.Writer{c.stdout}
	code := 0
	for _, op := range ops {
		f, err := c.m.fs().Open(c.abs(op), flag, 0o644)
		if err != nil {
			fmt.Fprintf(c.stderr, "tee: %s: %s\n", op, errText{errnoOf(err)})
			code = 1
			continue
		}
		defer f.Close()
		writers = append(writers, f)
	}
	if c.stdin != nil {
		io.Copy(io.MultiWriter(writers...), c.stdin)
	}
	return code, nil
}

func cp(c *call) (int, error) {
	_, ops := flags(c.args, "")
	if len(ops) < 2 {
		return c.failf(1, "missing operand")
	}
	return c.copyFiles(ops[:len(ops)-1], ops[len(ops)-1], false), nil
}

func mv(c *call) (int, error) {
	_, ops := flags(c.args, "")
	if len(ops) < 2 {
		return c.failf(1, "missing operand")
	}
	return c.copyFiles(ops[:len(ops)-1], ops[len(ops)-1], true), nil
}

// copyFiles copies regular files (directories are not modelled), removing
// the sources for mv.
func (c *call) copyFiles(srcs []string, dst string, remove bool) int {
	code := 0
	target := c.abs(dst)
	if fi, err := c.m.fs().Stat(target); err == nil && fi.IsDir() {
		target = ""
	}
	for _, src := range srcs {
		to := target
		if to == "" {
			to = path.Join(c.abs(dst), path.Base(src))
		}
		data, err := c.readAll(src)
		if err == nil {
			var f io.WriteCloser
			if f, err = c.m.fs().Open(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err == nil {
				_, err = f.Write(data)
				f.Close()
			}
		}
		if err == nil && remove {
			err = c.m.fs().Remove(c.abs(src))
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "%s: can't copy '%s': %s\n", c.name, src, errText{errnoOf(err)})
			code = 1
		}
	}
	return code
}

// exists is chmod and chown: the model keeps no owners or modes, so they
// only check their files exist.
func exists(c *call) (int, error) {
	_, ops := flags(c.args, "")
	if len(ops) < 2 {
		return c.failf(1, "missing operand")
	}
	code := 0
	for _, op := range ops[1:] {
		if _, err := c.m.fs().Stat(c.abs(op)); err != nil {
			fmt.Fprintf(c.stderr, "%s: %s: %s\n", c.name, op, errText{errnoOf(err)})
			code = 1
		}
	}
	return code, nil
}

func which(c *call) (int, error) {
	code := 0
	for _, name := range c.args {
		if !known(name) || implementedBuiltins[name] && !builtinPrograms[name] {
			code = 1
			continue
		}
		fmt.Fprintln(c.stdout, "/bin/"+path.Base(name))
	}
	return code, nil
}

func uname(c *call) (int, error) {
	set, _ := flags(c.args, "")
	machine := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if machine == "" {
		machine = runtime.GOARCH
	}
	fields := map[byte]string{'s': "Linux", 'n': c.m.env.Hostname, 'r': "6.1.0-fakecontainerd", 'v': "#1 SMP", 'm': machine, 'o': "GNU/Linux"}
	if has(set, "a") {
		fmt.Fprintf(c.stdout, "%s %s %s %s %s %s\n", fields['s'], fields['n'], fields['r'], fields['v'], fields['m'], fields['o'])
		return 0, nil
	}
	var out []string
	for _, k := range []byte("snrvmo") {
		if has(set, string(k)) {
			out = append(out, fields[k])
		}
	}
	if len(out) == 0 {
		out = []string{"Linux"}
	}
	fmt.Fprintln(c.stdout, strings.Join(out, " "))
	return 0, nil
}

func id(c *call) (int, error) {
	set, _ := flags(c.args, "")
	switch {
	case has(set, "u"), has(set, "g"):
		if has(set, "n") {
			fmt.Fprintln(c.stdout, "root")
		} else {
			fmt.Fprintln(c.stdout, "0")
		}
	default:
		fmt.Fprintln(c.stdout, "uid=0(root) gid=0(root) groups=0(root)")
	}
	return 0, nil
}

func whoami(c *call) (int, error) {
	fmt.Fprintln(c.stdout, "root")
	return 0, nil
}

func basename(c *call) (int, error) {
	if len(c.args) == 0 {
		return c.failf(1, "missing operand")
	}
	fmt.Fprintln(c.stdout, strings.TrimSuffix(path.Base(c.args[0]), c.argOr(1, "\x00")))
	return 0, nil
}

func dirname(c *call) (int, error) {
	if len(c.args) == 0 {
		return c.failf(1, "missing operand")
	}
	fmt.Fprintln(c.stdout, path.Dir(c.args[0]))
	return 0, nil
}

func (c *call) argOr(i int, def string) string {
	if i < len(c.args) {
		return c.args[i]
	}
	return def
}

func seq(c *call) (int, error) {
	nums := make([]int, 0, 3)
	for _, a := range c.args {
		n, err := strconv.Atoi(a)
		if err != nil {
			return c.failf(1, "invalid number '%s'", a)
		}
		nums = append(nums, n)
	}
	first, step, last := 1, 1, 0
	switch len(nums) {
	case 1:
		last = nums[0]
	case 2:
		first, last = nums[0], nums[1]
	case 3:
		first, step, last = nums[0], nums[1], nums[2]
	default:
		return c.failf(1, "missing operand")
	}
	if step == 0 {
		return c.failf(1, "invalid increment '0'")
	}
	for i := first; (step > 0 && i <= last) || (step < 0 && i >= last); i += step {
		if c.ctx.Err() != nil {
			return 0, c.ctx.Err()
		}
		fmt.Fprintln(c.stdout, i)
	}
	return 0, nil
}

// pgrep and pidof see one process: the container's main one, PID 1.
func pgrep(c *call) (int, error) {
	set, ops := flags(c.args, "")
	if len(ops) == 0 {
		return c.failf(2, "no matching criteria specified")
	}
	re, err := regexp.Compile(ops[0])
	if err != nil {
		return c.failf(2, "bad regex '%s'", ops[0])
	}
	init := c.m.env.Init
	subject := ""
	if len(init) > 0 {
		subject = path.Base(init[0])
		if has(set, "f") {
			subject = strings.Join(init, " ")
		}
	}
	if subject == "" || !re.MatchString(subject) {
		return 1, nil
	}
	if !has(set, "q") {
		fmt.Fprintln(c.stdout, "1")
	}
	return 0, nil
}

func pidof(c *call) (int, error) {
	init := c.m.env.Init
	for _, name := range c.args {
		if len(init) > 0 && path.Base(init[0]) == path.Base(name) {
			fmt.Fprintln(c.stdout, "1")
			return 0, nil
		}
	}
	return 1, nil
}

// runStatus runs args as a program of this call's container, keeping its
// exit status in status.
func (c *call) runStatus(args []string) error {
	sub := &call{ctx: c.ctx, m: c.m, hc: c.hc, vars: c.vars, stdin: c.stdin, stdout: c.stdout, stderr: c.stderr}
	err := sub.run(args)
	c.status = 0
	if err == nil {
		return nil
	}
	if st, ok := errors.AsType[interp.ExitStatus](err); ok {
		c.status = int(st)
		return nil
	}
	return err
}

// timeoutCmd is timeout(1): the command is cut after the duration on the
// project clock, and the status is then 124.
func timeoutCmd(c *call) (int, error) {
	_, ops := flags(c.args, "sk")
	if len(ops) < 2 {
		return c.failf(1, "missing operand")
	}
	d, err := parseSeconds(ops[0])
	if err != nil {
		return c.failf(125, "invalid time interval '%s'", ops[0])
	}
	ctx, cancel := c.m.env.Clock.WithTimeout(c.ctx, d)
	defer cancel()
	sub := *c
	sub.ctx = ctx
	err = sub.runStatus(ops[1:])
	if err != nil && ctx.Err() != nil && c.ctx.Err() == nil {
		return 124, nil
	}
	if err != nil {
		return 0, err
	}
	return sub.status, nil
}

// pause is the pause container's /pause (and agnhost's pause): it sleeps
// until it is stopped.
func pause(c *call) (int, error) {
	<-c.ctx.Done()
	return 0, c.ctx.Err()
}

// target finds host and port in the operands of a network client.
func target(ops []string, defHost, defPort string) (string, string) {
	host, port := defHost, defPort
	for _, op := range ops {
		if strings.HasPrefix(op, "-") {
			continue
		}
		u := op
		if i := strings.Index(u, "://"); i >= 0 {
			u = u[i+3:]
		}
		u, _, _ = strings.Cut(u, "/")
		if h, p, ok := strings.Cut(u, ":"); ok {
			return h, p
		}
		if _, err := strconv.Atoi(u); err == nil {
			port = u
		} else {
			host = u
		}
	}
	return host, port
}

func netcat(c *call) (int, error) {
	_, ops := flags(c.args, "wWpqs")
	host, _ := target(ops, "localhost", "")
	fmt.Fprintf(c.stderr, "nc: can't connect to remote host (%s): Connection refused\n", resolve(host))
	return 1, nil
}

func wget(c *call) (int, error) {
	_, ops := flags(c.args, "OoTtUY")
	host, _ := target(ops, "localhost", "80")
	fmt.Fprintf(c.stderr, "wget: can't connect to remote host (%s): Connection refused\n", resolve(host))
	return 1, nil
}

func curl(c *call) (int, error) {
	set, ops := flags(c.args, "oXHdmAuwT")
	host, port := target(ops, "localhost", "80")
	if !has(set, "s") || has(set, "S") {
		fmt.Fprintf(c.stderr, "curl: (7) Failed to connect to %s port %s after 0 ms: Couldn't connect to server\n", host, port)
	}
	return 7, nil
}

// grpcHealthProbe waits its -connect-timeout (1s) for a server that is not
// there, and exits 2 as the real probe does on a failed connection.
func grpcHealthProbe(c *call) (int, error) {
	addr, timeout := "", time.Second
	for _, a := range c.args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, "addr="); ok {
			addr = v
		}
		if v, ok := strings.CutPrefix(a, "connect-timeout="); ok {
			if d, err := time.ParseDuration(v); err == nil {
				timeout = d
			}
		}
	}
	if addr == "" {
		return c.failf(1, "-addr not specified")
	}
	if err := c.m.env.Clock.Sleep(c.ctx, timeout); err != nil {
		return 0, err
	}
	fmt.Fprintf(c.stderr, "timeout: failed to connect service %q within %v\n", addr, timeout)
	return 2, nil
}

func redisCLI(c *call) (int, error) {
	host, port := c.hostPort("hpa", "127.0.0.1", "6379")
	fmt.Fprintf(c.stdout, "Could not connect to Redis at %s:%s: Connection refused\n", host, port)
	return 1, nil
}

func pgIsReady(c *call) (int, error) {
	host, port := c.hostPort("hpUdt", "/var/run/postgresql", "5432")
	fmt.Fprintf(c.stdout, "%s:%s - no response\n", host, port)
	return 2, nil
}

// hostPort reads a database client's -h HOST and -p PORT.
func (c *call) hostPort(withValue, host, port string) (string, string) {
	set, _ := flags(c.args, withValue)
	if v, ok := set['h']; ok {
		host = v
	}
	if v, ok := set['p']; ok {
		port = v
	}
	return host, port
}

func mysqladmin(c *call) (int, error) {
	fmt.Fprintln(c.stderr, "mysqladmin: connect to server at 'localhost' failed")
	fmt.Fprintln(c.stderr, "error: 'Can't connect to local MySQL server through socket '/var/run/mysqld/mysqld.sock' (2)'")
	return 1, nil
}

// resolve is the address a name reaches in the container: only localhost
// is known.
func resolve(host string) string {
	if host == "localhost" || host == "" {
		return "127.0.0.1"
	}
	return host
}

// agnhost is the Kubernetes e2e image's multi-tool; only its pause
// subcommand is modelled.
func agnhost(c *call) (int, error) {
	if len(c.args) > 0 && c.args[0] == "pause" {
		return pause(c)
	}
	return 0, &UnknownCommandError{Name: strings.Join(append([]string{"agnhost"}, c.args[:min(1, len(c.args))]...), " ")}
}
