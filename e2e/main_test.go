package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binary is the fakecontainerd built once by TestMain.
var binary string

// buildVersion is stamped into the binary as the Makefile does, so the
// tests can check that the runtime version reaches VersionResponse.
const buildVersion = "e2e-build"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "fcde-bin")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "fakecontainerd")
	if err := build(binary); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	return m.Run()
}

// build compiles ./cmd/fakecontainerd from the module root, with -race when
// the tests themselves run with it.
func build(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", out,
		"-ldflags", "-X github.com/fakecontainerd/fakecontainerd/server.Version=" + buildVersion}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/fakecontainerd")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	start := time.Now()
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, output)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s (race=%v) in %v\n", out, raceEnabled, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// moduleRoot is the directory of the go.mod governing this package.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}
