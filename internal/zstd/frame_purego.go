//go:build !cgo

package zstd

func newFrameEncoder() (FrameEncoder, error) { return newPureGoFrameEncoder() }
