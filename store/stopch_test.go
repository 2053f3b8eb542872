package store

import (
	"errors"
	"fmt"
	"testing"
)

func TestStopCh(t *testing.T) {
	s := NewStopCh()
	select {
	case <-s.Stopped():
		t.Fatal("Stopped() is closed before Stop()")
	default:
	}
	s.Stop()
	s.Stop() // a second Stop must not panic on a closed channel
	select {
	case <-s.Stopped():
	default:
		t.Fatal("Stopped() is still open after Stop()")
	}
}

func TestSentinelsWrap(t *testing.T) {
	err := fmt.Errorf("container %q: %w", "abc", ErrNotFound)
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("errors.Is on %v: want ErrNotFound only", err)
	}
}
