package media

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferry-update/ferry/internal/display"
)

// DeviceTooSmallError says that the image size asked for does not fit
// the device.
type DeviceTooSmallError struct {
	Size       int64 // asked for
	Device     string
	DeviceSize int64
}

func (e *DeviceTooSmallError) Error() string {
	return fmt.Sprintf("size %s is larger than %s (%s)", display.Bytes(e.Size), e.Device, display.Bytes(e.DeviceSize))
}

// BuildDevice makes a stick straight on device ('ferry media build
// --device'): unless w.Force, device is checked with CheckTarget first;
// the image is built (Build with o) in a temporary directory, o.Size 0
// meaning the device's size rounded down to a MiB (at most MaxImageSize),
// then written onto device with Write (w, sparse) and read back. The
// BuildResult's Path is device. A size larger than the device is a
// *DeviceTooSmallError before anything is built.
func BuildDevice(device string, bundles []string, o BuildOptions, w WriteOptions) (*BuildResult, *WriteResult, error) {
	if !w.Force {
		if err := CheckTarget(device); err != nil {
			return nil, nil, err
		}
	}
	devSize, err := DeviceSize(device)
	if err != nil {
		return nil, nil, err
	}
	if o.Size == 0 {
		o.Size = min(devSize/(1<<20)*(1<<20), MaxImageSize)
	} else if o.Size > devSize {
		return nil, nil, &DeviceTooSmallError{Size: o.Size, Device: device, DeviceSize: devSize}
	}
	tmp, err := os.MkdirTemp("", "ferry-stick-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	img := filepath.Join(tmp, "stick.img")
	res, err := Build(img, bundles, o)
	if err != nil {
		return nil, nil, err
	}
	w.Sparse = true
	wr, err := Write(img, device, w)
	if err != nil {
		return nil, nil, err
	}
	res.Path = device
	return res, wr, nil
}
