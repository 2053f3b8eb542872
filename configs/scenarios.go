package configs

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// scenarioFiles are the built-in scenario files, one per incident of the
// brief. They live here, beside default.toml, because they are data the
// binary ships; the scenario package parses and runs them.
//
//go:embed scenarios/*.toml
var scenarioFiles embed.FS

// ScenarioNames lists the built-in scenarios by name (the file name without
// ".toml"), sorted.
func ScenarioNames() []string {
	entries, err := fs.ReadDir(scenarioFiles, "scenarios")
	if err != nil {
		// The directory is embedded at build time; it cannot be missing.
		panic(fmt.Sprintf("configs: embedded scenarios: %v", err))
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".toml"); ok && !e.IsDir() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// ScenarioFile returns the built-in scenario file of that name.
func ScenarioFile(name string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("scenario %q: not a built-in scenario name", name)
	}
	data, err := scenarioFiles.ReadFile(path.Join("scenarios", name+".toml"))
	if err != nil {
		return nil, fmt.Errorf("scenario %q: no such built-in scenario (built-in: %s)", name, strings.Join(ScenarioNames(), ", "))
	}
	return data, nil
}
