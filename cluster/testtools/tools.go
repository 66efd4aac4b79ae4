//go:build tools

// Package testtools records the main packages built for the tests (besides
// ./cmd/kstatus) so that `go mod tidy` keeps their dependencies in go.sum.
package testtools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
