package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// writeTable prints the rows as a markdown table, ready for the README.
func writeTable(w io.Writer, res *result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", res.Command)
	fmt.Fprintf(&b, "%s, %d CPUs; client: %s.\n\n", res.GoVersion, res.CPUs, res.Client)
	b.WriteString("| N | metric | fakecontainerd | peer | floor | ours/peer | target | met? |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---|---|\n")
	for _, r := range res.Rows {
		n := "all"
		if r.N > 0 {
			n = count(r.N)
		}
		met := ""
		if r.Met != nil {
			met = "no"
			if *r.Met {
				met = "yes"
			}
		}
		ratio := "-"
		if r.Ratio != nil {
			ratio = strconv.FormatFloat(*r.Ratio, 'f', 2, 64)
		}
		target := r.Target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
			n, r.Metric, value(r.Ours, r.Unit), value(r.Peer, r.Unit), value(r.Floor, r.Unit), ratio, target, met)
	}
	fmt.Fprintf(&b, "\ntargets met: %d of %d\n", res.Met, res.Targets)
	_, err := io.WriteString(w, b.String())
	return err
}

// value prints a figure with three significant digits and its unit.
func value(v *float64, unit string) string {
	if v == nil {
		return "-"
	}
	x := *v
	var s string
	switch {
	case x >= 100:
		s = strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		s = strconv.FormatFloat(x, 'f', 1, 64)
	case x >= 1:
		s = strconv.FormatFloat(x, 'f', 2, 64)
	default:
		s = strconv.FormatFloat(x, 'f', 3, 64)
	}
	if unit == "x" {
		return s + "×"
	}
	return s + " " + unit
}

// writeJSON prints the result as one JSON object.
func writeJSON(w io.Writer, res any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
