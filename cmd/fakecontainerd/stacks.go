package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/sirupsen/logrus"
)

// dumpStacksOnSIGUSR1 installs containerd's SIGUSR1 handler: every
// goroutine's stack goes to the log, at info, and to
// <dir>/<name>.<pid>.stacks.log (containerd writes os.TempDir(); the state
// dir keeps the dump with the rest of the run). The returned func removes
// the handler.
func dumpStacksOnSIGUSR1(log *logrus.Entry, dir, name string) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				dumpStacks(log, filepath.Join(dir, fmt.Sprintf("%s.%d.stacks.log", name, os.Getpid())))
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// allStacks is runtime.Stack of every goroutine, the buffer grown until
// the dump fits.
func allStacks() []byte {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

func dumpStacks(log *logrus.Entry, path string) {
	stacks := allStacks()
	log.Infof("=== BEGIN goroutine stack dump ===\n%s\n=== END goroutine stack dump ===", stacks)
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		log.WithError(err).Error("failed to write goroutine stack dump")
		return
	}
	if err := os.WriteFile(path, stacks, 0o600); err != nil {
		log.WithError(err).Error("failed to write goroutine stack dump")
		return
	}
	log.Infof("goroutine stack dump written to %s", path)
}
