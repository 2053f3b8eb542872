// Command matrix prints the kubelet version matrix: one row per kubelet
// version and incident-1 arm, from the result.json files that
// TestIncident1 leaves under a log root (make kubelet-matrix).
//
//	go run ./matrix [-logs DIR]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fakecontainerd/fakecontainerd/e2e/kubelet/incident"
)

func main() {
	logs := flag.String("logs", "_logs/matrix", "folder holding one TestIncident1 log tree per kubelet version")
	flag.Parse()
	rs, err := incident.ReadResults(*logs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "matrix: read results under %s: %v\n", *logs, err)
		os.Exit(1)
	}
	if len(rs) == 0 {
		fmt.Fprintf(os.Stderr, "matrix: no %s under %s (run make kubelet-matrix)\n", incident.ResultFile, *logs)
		os.Exit(1)
	}
	if err := incident.WriteTable(os.Stdout, rs); err != nil {
		fmt.Fprintf(os.Stderr, "matrix: %v\n", err)
		os.Exit(1)
	}
}
