//go:build tools

// Package storage pins the provisioner's main package for `go mod tidy`.
package storage

import _ "github.com/rancher/local-path-provisioner"
