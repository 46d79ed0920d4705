//go:build tools

// Package tools pins the commands this module exists to build, so `go mod tidy` keeps their
// dependencies.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
