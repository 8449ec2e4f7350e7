//go:build cgo

package zstd

import (
	"fmt"

	dzstd "github.com/DataDog/zstd"
)

type cFrameEncoder struct{ ctx dzstd.Ctx }

func newFrameEncoder() (FrameEncoder, error) { return cFrameEncoder{dzstd.NewCtx()}, nil }

func (e cFrameEncoder) EncodeFrame(dst, src []byte) ([]byte, error) {
	out, err := e.ctx.CompressLevel(dst[len(dst):cap(dst)], src, FrameLevel)
	if err != nil {
		return nil, fmt.Errorf("compressing zstd frame: %w", err)
	}
	if len(dst) == 0 {
		return out, nil
	}
	return append(dst, out...), nil
}
