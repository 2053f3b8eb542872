package main

import (
	"testing"
	"time"
)

func TestStateClockKeepsOriginAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	first, err := stateClock(dir, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	again, err := stateClock(dir, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Origin().Equal(first.Origin()) {
		t.Errorf("origin after restart = %v, want the saved %v", again.Origin(), first.Origin())
	}
	before := first.Now()
	if d := again.Now().Sub(before); d < 0 || d > time.Minute {
		t.Errorf("scenario time jumped by %v across a restart", d)
	}
	// A different scale starts a new origin.
	other, err := stateClock(dir, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if other.Origin().Equal(first.Origin()) {
		t.Error("a new scale kept the old origin")
	}
	if _, err := stateClock(dir, 0); err == nil {
		t.Error("scale 0: want an error")
	}
}
