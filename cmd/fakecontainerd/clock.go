package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// clockFile keeps the scenario clock's origin under --state, so a
// restarted server's scenario time carries on from where it was (and
// agrees with process-mode shims started by the previous run) instead of
// jumping back to wall time. At scale 1 scenario time is wall time anyway.
const clockFile = "fakecontainerd-clock.json"

type clockState struct {
	Scale          float64 `json:"scale"`
	OriginUnixNano int64   `json:"origin_unix_nano"`
}

// stateClock returns the server's clock: the saved origin if the scale is
// unchanged, else a new origin now, which it saves.
func stateClock(stateDir string, scale float64) (clock.Clock, error) {
	path := filepath.Join(stateDir, clockFile)
	var saved clockState
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if json.Unmarshal(data, &saved) == nil && saved.Scale == scale && saved.OriginUnixNano > 0 {
			return clock.NewAt(scale, time.Unix(0, saved.OriginUnixNano))
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("read scenario clock %s: %w", path, err)
	}
	clk, err := clock.New(scale)
	if err != nil {
		return nil, fmt.Errorf("config: plugins.\"io.fakecontainerd.v1\".time_scale: %w", err)
	}
	data, _ = json.Marshal(clockState{Scale: scale, OriginUnixNano: clk.Origin().UnixNano()})
	if err := os.MkdirAll(stateDir, 0o711); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("save scenario clock %s: %w", path, err)
	}
	return clk, nil
}
