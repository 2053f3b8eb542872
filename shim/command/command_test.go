package command

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// fastClock runs 1 s of project time in 1 ms.
func fastClock(t *testing.T) clock.Clock {
	t.Helper()
	clk, err := clock.NewAt(0.001, time.Date(2026, 12, 3, 8, 43, 1, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return clk
}

// frozen is a clock whose Now stands still (sleeps run at the fast scale).
type frozen struct {
	clock.Clock
	now time.Time
}

func (f frozen) Now() time.Time { return f.now }

// syncBuffer is a writer safe for the pipelines' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	stdout, stderr string
	code           int
	err            error
}

func runArgs(t *testing.T, env Env, args ...string) result {
	t.Helper()
	var out, errOut syncBuffer
	env.Stdout, env.Stderr = &out, &errOut
	if env.Clock == nil {
		env.Clock = fastClock(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := Parse(args).Run(ctx, env)
	return result{out.String(), errOut.String(), code, err}
}

func sh(t *testing.T, env Env, script string) result {
	t.Helper()
	return runArgs(t, env, "/bin/sh", "-c", script)
}

func TestScripts(t *testing.T) {
	env := Env{
		Vars:     []string{"GREETING=hello", "EMPTY="},
		Hostname: "web-0",
	}
	cases := []struct {
		name, script string
		stdout       string
		stderr       string // substring
		code         int
	}{
		{"echo", "echo hi", "hi\n", "", 0},
		{"semicolon", "echo a; echo b", "a\nb\n", "", 0},
		{"and", "true && echo yes", "yes\n", "", 0},
		{"and short-circuits", "false && echo no", "", "", 1},
		{"or", "false || echo fallback", "fallback\n", "", 0},
		{"exit code", "echo hi; exit 3", "hi\n", "", 3},
		{"exit stops the script", "exit 4; echo never", "", "", 4},
		{"last status", "false", "", "", 1},
		{"status variable", "false; echo $?", "1\n", "", 0},
		{"variables", "X=1; Y=\"$X and ${X}\"; echo $Y", "1 and 1\n", "", 0},
		{"env var", "echo $GREETING", "hello\n", "", 0},
		{"single quotes", "echo '$GREETING'", "$GREETING\n", "", 0},
		{"double quotes keep spaces", `X="a  b"; echo "$X"`, "a  b\n", "", 0},
		{"printf", `printf '%s-%d\n' a 5`, "a-5\n", "", 0},
		{"if", "if true; then echo t; else echo f; fi", "t\n", "", 0},
		{"if else", "if false; then echo t; else echo f; fi", "f\n", "", 0},
		{"for", "for i in 1 2 3; do echo $i; done", "1\n2\n3\n", "", 0},
		{"while", "i=0; while [ $i -lt 3 ]; do echo $i; i=$((i+1)); done", "0\n1\n2\n", "", 0},
		{"until", "i=0; until [ $i -ge 2 ]; do echo $i; i=$((i+1)); done", "0\n1\n", "", 0},
		{"test", "test -n x && [ 1 -eq 1 ] && echo ok", "ok\n", "", 0},
		{"test missing file", "[ -f /tmp/nope ]", "", "", 1},
		{"pipe to grep", "echo foo | grep -q foo && echo found", "found\n", "", 0},
		{"grep no match", "echo foo | grep bar", "", "", 1},
		{"grep count", "printf 'a\\nb\\na\\n' | grep -c a", "2\n", "", 0},
		{"redirect and cat", "echo ok > /tmp/healthy; cat /tmp/healthy", "ok\n", "", 0},
		{"append", "echo a > /tmp/f; echo b >> /tmp/f; cat /tmp/f", "a\nb\n", "", 0},
		{"stderr to stdout", "cat /nope 2>&1", "cat: can't open '/nope': No such file or directory\n", "", 1},
		{"stderr", "cat /nope", "", "cat: can't open '/nope': No such file or directory", 1},
		{"hostname", "hostname", "web-0\n", "", 0},
		{"etc hostname", "cat /etc/hostname", "web-0\n", "", 0},
		{"sleep", "sleep 1; echo slept", "slept\n", "", 0},
		{"sleep bad", "sleep x", "", "sleep: invalid number 'x'", 1},
		{"touch and ls", "mkdir /data; touch /data/b /data/a; ls /data", "a\nb\n", "", 0},
		{"mkdir -p", "mkdir -p /x/y/z && ls /x/y", "z\n", "", 0},
		{"rm", "touch /tmp/x; rm /tmp/x; [ -e /tmp/x ] || echo gone", "gone\n", "", 0},
		{"rm missing", "rm /tmp/none", "", "rm: can't remove '/tmp/none'", 1},
		{"rm -rf", "mkdir -p /tmp/d/e; touch /tmp/d/e/f; rm -rf /tmp/d; ls /tmp", "", "", 0},
		{"env", "env | grep GREETING", "GREETING=hello\n", "", 0},
		{"env runs a command", "env FOO=bar printenv FOO", "bar\n", "", 0},
		{"export", "export A=1; printenv A", "1\n", "", 0},
		{"tail", "printf '1\\n2\\n3\\n' > /tmp/l; tail -n 2 /tmp/l", "2\n3\n", "", 0},
		{"head", "printf '1\\n2\\n3\\n' | head -n 1", "1\n", "", 0},
		{"wc", "printf 'a b\\nc\\n' | wc -l", "2\n", "", 0},
		{"true by path", "/bin/true && /bin/echo yes", "yes\n", "", 0},
		{"false by path", "/bin/false", "", "", 1},
		{"nested sh", `sh -c 'echo inner; exit 5'; echo $?`, "inner\n5\n", "", 0},
		{"function", "f() { echo in f $1; }; f x", "in f x\n", "", 0},
		{"command substitution", "echo $(echo sub)", "sub\n", "", 0},
		{"case", "case abc in a*) echo A;; *) echo other;; esac", "A\n", "", 0},
		{"wget refused", "wget -q -O- http://localhost:8080/healthz", "", "wget: can't connect to remote host (127.0.0.1): Connection refused", 1},
		{"nc refused", "nc -z localhost 6379", "", "Connection refused", 1},
		{"curl refused", "curl -sf http://localhost:8080/", "", "", 7},
		{"pg_isready", "pg_isready -h localhost", "localhost:5432 - no response\n", "", 2},
		{"grpc_health_probe", "grpc_health_probe -addr=:50051", "", `failed to connect service ":50051" within 1s`, 2},
		{"timeout", "timeout 1 sleep 10", "", "", 124},
		{"timeout passes", "timeout 10 true", "", "", 0},
		{"uname", "uname", "Linux\n", "", 0},
		{"id", "id -u", "0\n", "", 0},
		{"seq", "seq 3", "1\n2\n3\n", "", 0},
		{"cp", "echo x > /tmp/a; cp /tmp/a /tmp/b; cat /tmp/b", "x\n", "", 0},
		{"tee", "echo t | tee /tmp/t >/dev/null; cat /tmp/t", "t\n", "", 0},
		{"dev null", "echo gone > /dev/null; cat /dev/null", "", "", 0},
		{"background and wait", "sleep 1 & wait; echo done", "done\n", "", 0},
		{"break", "while true; do echo once; break; done", "once\n", "", 0},
		{"sysctl unknown key", "sysctl -n net.core.somaxconn", "", "unknown key", 1},
		{"which", "which sh", "/bin/sh\n", "", 0},
		{"unset variable", "echo \"[$NOPE]\"", "[]\n", "", 0},
		{"empty script", "", "", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := sh(t, env, tc.script)
			if got.err != nil {
				t.Fatalf("run: %v (stderr %q)", got.err, got.stderr)
			}
			if got.stdout != tc.stdout || got.code != tc.code || !strings.Contains(got.stderr, tc.stderr) {
				t.Errorf("%q: stdout %q, stderr %q, exit %d; want stdout %q, stderr containing %q, exit %d",
					tc.script, got.stdout, got.stderr, got.code, tc.stdout, tc.stderr, tc.code)
			}
		})
	}
}

func TestDate(t *testing.T) {
	env := Env{Clock: frozen{fastClock(t), time.Date(2026, 12, 3, 8, 43, 1, 5, time.UTC)}}
	for script, want := range map[string]string{
		"date":                   "Thu Dec  3 08:43:01 UTC 2026\n",
		"date +%Y-%m-%d":         "2026-12-03\n",
		"date -u +%H:%M:%S%z":    "08:43:01+0000\n",
		"date +%s":               "1796287381\n",
		"date -Iseconds":         "2026-12-03T08:43:01+00:00\n",
		"date -R":                "Thu, 03 Dec 2026 08:43:01 +0000\n",
		"date '+%j %e %N %% %q'": "337  3 000000005 % %q\n",
	} {
		if got := sh(t, env, script); got.stdout != want || got.code != 0 {
			t.Errorf("%q: %q exit %d, want %q", script, got.stdout, got.code, want)
		}
	}
}

func TestExecForm(t *testing.T) {
	cases := []struct {
		args   []string
		stdout string
		code   int
	}{
		{[]string{"echo", "a  b", "$HOME", "*"}, "a  b $HOME *\n", 0},
		{[]string{"/bin/sh", "-c", "echo $0 $1", "zero", "one"}, "zero one\n", 0},
		{[]string{"sh", "-ec", "false; echo never"}, "", 1},
		{[]string{"bash", "-c", "[[ x == x ]] && echo bash"}, "bash\n", 0},
		{[]string{"sh"}, "", 0}, // no script, no stdin: EOF
		{[]string{"/bin/false"}, "", 1},
		{[]string{"sleep", "2"}, "", 0},
	}
	for _, tc := range cases {
		got := runArgs(t, Env{}, tc.args...)
		if got.err != nil || got.stdout != tc.stdout || got.code != tc.code {
			t.Errorf("%q: stdout %q, exit %d, err %v; want %q, %d", tc.args, got.stdout, got.code, got.err, tc.stdout, tc.code)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	for _, script := range []string{
		"if true; then echo x",
		"while true; do echo x",
		"echo 'unterminated",
		"for i in; do",
		"fi",
		"echo $((1 +))",
		"(echo a",
	} {
		p := Parse([]string{"sh", "-c", script})
		if p.SyntaxError() == nil {
			t.Errorf("%q: no syntax error", script)
			continue
		}
		got := sh(t, Env{}, script)
		if got.code != ExitSyntax || !strings.HasPrefix(got.stderr, "sh: -c: line 1: syntax error: ") || got.stdout != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit 2 and sh's syntax error", script, got.code, got.stderr, got.stdout)
		}
	}
}

func TestUnknownCommands(t *testing.T) {
	cases := []struct {
		args    []string
		unknown []string
	}{
		{[]string{"nginx", "-g", "daemon off;"}, []string{"nginx"}},
		{[]string{"sh", "-c", "echo start; exec /docker-entrypoint.sh redis-server"}, []string{"/docker-entrypoint.sh"}},
		{[]string{"sh", "-c", "f() { true; }; f; kubectl get pods"}, []string{"kubectl"}},
		{[]string{"sh", "-c", "env A=1 java -jar x.jar"}, []string{"java"}},
		{[]string{"sh", "-c", "kill 1"}, []string{"kill"}},
		{[]string{"bash", "-c", "cat <(echo x)"}, []string{"<(...) process substitution"}},
		{[]string{"sh", "-c", "time sleep 1"}, []string{"time"}},
		{[]string{"sh", "-c", "while true; do date; sleep 1; done"}, nil},
		{[]string{"/pause"}, nil},
		{[]string{"tail", "-f", "/dev/null"}, nil},
		{nil, []string{"(no command)"}},
	}
	for _, tc := range cases {
		p := Parse(tc.args)
		if !slices.Equal(p.Unknown(), tc.unknown) {
			t.Errorf("%q: unknown %q, want %q", tc.args, p.Unknown(), tc.unknown)
		}
	}
	// A name only known at run time is reported then.
	got := sh(t, Env{}, "echo before; CMD=redis-server; $CMD --port 1")
	var unknown *UnknownCommandError
	if !errors.As(got.err, &unknown) || unknown.Name != "redis-server" || got.stdout != "before\n" {
		t.Errorf("dynamic unknown command: err %v, stdout %q", got.err, got.stdout)
	}
}

// Infinite loops and endless programs end when their context does: a stop,
// a kill or an exec timeout.
func TestCancellationCutsEndlessPrograms(t *testing.T) {
	for _, args := range [][]string{
		{"sh", "-c", "while true; do :; done"},
		{"sh", "-c", "while true; do date; sleep 1; done"},
		{"sh", "-c", "for i in $(seq 1000000000); do :; done"},
		{"sleep", "infinity"},
		{"tail", "-f", "/dev/null"},
		{"/pause"},
		{"sh", "-c", "sleep 100 | cat"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := Parse(args).Run(ctx, Env{Clock: fastClock(t)})
			done <- err
		}()
		time.Sleep(5 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%q: err %v, want context.Canceled", args, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%q: still running after its context was cancelled", args)
		}
	}
}

// The date loop prints one line per second of project time.
func TestDateLoopFollowsTheClock(t *testing.T) {
	clk, err := clock.New(0.001)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	start := clk.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Parse([]string{"sh", "-c", "while true; do date +%s; sleep 1; done"}).Run(ctx, Env{Clock: clk, Stdout: &out})
	}()
	time.Sleep(300 * time.Millisecond) // ~300 s of project time
	cancel()
	<-done
	elapsed := clk.Since(start)
	lines := strings.Count(out.String(), "\n")
	// One line per elapsed second at most (plus the first); a busy machine
	// only makes the loop slower, never faster.
	if lines < 1 || lines > int(elapsed/time.Second)+1 {
		t.Errorf("%d lines in %v of project time", lines, elapsed)
	}
}

func TestViewMountsAndReadOnly(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "index.html"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rw := t.TempDir()
	view := NewView(ViewConfig{
		Mounts: []Mount{
			{Destination: "/usr/share/nginx/html", Source: host, ReadOnly: true},
			{Destination: "/scratch", Source: rw},
		},
		ReadOnlyRoot: true,
		Hostname:     "h",
		Sysctls:      map[string]string{"net.core.somaxconn": "1024"},
	}, fastClock(t))
	env := Env{FS: view, Hostname: "h"}
	cases := []struct {
		script, stdout, stderr string
		code                   int
	}{
		{"ls /usr/share/nginx/html", "index.html\n", "", 0},
		{"cat /usr/share/nginx/html/index.html", "hi\n", "", 0},
		{"echo x > /usr/share/nginx/html/x", "", "sh: can't create /usr/share/nginx/html/x: Read-only file system", 1},
		{"touch /tmp/healthy", "", "touch: /tmp/healthy: Read-only file system", 1},
		{"echo ok > /scratch/out; cat /scratch/out", "ok\n", "", 0},
		{"sysctl -n net.core.somaxconn", "1024\n", "", 0},
		{"sysctl net.core.somaxconn", "net.core.somaxconn = 1024\n", "", 0},
		{"cat /proc/sys/net/core/somaxconn", "1024\n", "", 0},
		{"sysctl -w net.core.somaxconn=1", "", "Read-only file system", 1},
		{"ls /proc/sys/net", "core\n", "", 0},
		{"ls /usr/share/nginx", "html\n", "", 0},
		{"[ -w /scratch ] && ! [ -w /usr/share/nginx/html ] && echo ok", "ok\n", "", 0},
	}
	for _, tc := range cases {
		got := sh(t, env, tc.script)
		if got.err != nil || got.stdout != tc.stdout || got.code != tc.code || !strings.Contains(got.stderr, tc.stderr) {
			t.Errorf("%q: stdout %q, stderr %q, exit %d, err %v; want %q, %q, %d", tc.script, got.stdout, got.stderr, got.code, got.err, tc.stdout, tc.stderr, tc.code)
		}
	}
	if data, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(data) != "ok\n" {
		t.Errorf("the writable mount's host file: %q, %v", data, err)
	}
	// rm -rf empties the mount for real and cannot remove the mount point.
	if got := sh(t, env, "rm -rf /scratch"); got.code != 1 || !strings.Contains(got.stderr, "busy") {
		t.Errorf("rm -rf /scratch: exit %d, %q", got.code, got.stderr)
	}
	if _, err := os.Stat(filepath.Join(rw, "out")); !os.IsNotExist(err) {
		t.Errorf("the mount's file after rm -rf: %v", err)
	}
}

// An exec sees what the main process wrote: they share the view.
func TestSharedViewAcrossRuns(t *testing.T) {
	view := NewView(ViewConfig{}, fastClock(t))
	env := Env{FS: view}
	if got := sh(t, env, "cat /tmp/healthy"); got.code != 1 {
		t.Fatalf("probe before the file exists: exit %d", got.code)
	}
	if got := sh(t, env, "echo ok > /tmp/healthy"); got.code != 0 {
		t.Fatalf("writing the file: exit %d, %q", got.code, got.stderr)
	}
	if got := sh(t, env, "cat /tmp/healthy"); got.code != 0 || got.stdout != "ok\n" {
		t.Fatalf("probe after: exit %d, %q", got.code, got.stdout)
	}
}

func TestWorkingDirectory(t *testing.T) {
	for dir, want := range map[string]string{"": "/\n", "/tmp": "/tmp\n", "../../..": "/\n", "app/x": "/app/x\n"} {
		if got := sh(t, Env{Dir: dir}, "pwd"); got.stdout != want {
			t.Errorf("pwd in %q: %q, want %q", dir, got.stdout, want)
		}
	}
	if got := sh(t, Env{Dir: "/tmp"}, "echo x > f; cat /tmp/f"); got.stdout != "x\n" {
		t.Errorf("a relative path is the working directory's: %q %q", got.stdout, got.stderr)
	}
}

func TestPgrepSeesTheMainProcess(t *testing.T) {
	env := Env{Init: []string{"/usr/sbin/nginx", "-g", "daemon off;"}}
	if got := runArgs(t, env, "pgrep", "nginx"); got.code != 0 || got.stdout != "1\n" {
		t.Errorf("pgrep nginx: %d %q", got.code, got.stdout)
	}
	if got := runArgs(t, env, "pgrep", "redis"); got.code != 1 {
		t.Errorf("pgrep redis: %d", got.code)
	}
}
