package fleetload

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/ferry-update/ferry/transport/checkin"
)

// Label is the enrollment label that tells the benchmark's two kinds of
// devices apart: LabelDownload for the devices a deployment assigns the
// bundle (deploy to the filter DownloadFilter), LabelPoll for the others.
const (
	Label          = "bench"
	LabelDownload  = "download"
	LabelPoll      = "poll"
	DownloadFilter = "label." + Label + " = " + LabelDownload
	// DeviceType is the device type the simulated devices report.
	DeviceType = "bench-board"
)

// Device is one simulated device.
type Device struct {
	Key  ed25519.PrivateKey
	ID   string // checkin.DeviceID of the public key
	Name string
	// Download marks a device the benchmark's deployment assigns the
	// bundle: it downloads it.
	Download bool
	// Addr is the loopback address it connects from (nil: any).
	Addr net.IP
}

// MakeDevices makes n devices, downloaders of them marked Download,
// spread evenly over the list: devices poll at offsets in list order, so
// the downloaders' first polls, and their downloads, start spread over
// the poll interval, as a deployment reaches each device at its own next
// poll. (The first downloaders of the list, as before, polled within the
// first second of 10,000: every download started at once, and every
// Range request of all of them came at the same moment, a burst no fleet
// makes.) Their keys derive from seed and their index, so the same
// seed makes the same devices (a list written by one run of the
// benchmark's generator is the list the next run drives). Each gets its
// own loopback address, 127.1.0.1 and on (up to some 16 million).
func MakeDevices(seed string, n, downloaders int) ([]*Device, error) {
	if n < 1 || n > 250*250*250 {
		return nil, fmt.Errorf("devices: %d, want 1 to %d", n, 250*250*250)
	}
	if downloaders < 0 || downloaders > n {
		return nil, fmt.Errorf("downloading devices: %d, want 0 to %d", downloaders, n)
	}
	out := make([]*Device, n)
	for i := range out {
		s := sha256.Sum256([]byte(seed + "/" + strconv.Itoa(i)))
		key := ed25519.NewKeyFromSeed(s[:])
		out[i] = &Device{
			Key:      key,
			ID:       checkin.DeviceID(key.Public().(ed25519.PublicKey)),
			Name:     fmt.Sprintf("sim-%05d", i),
			Download: i*downloaders%n < downloaders,
			Addr:     net.IPv4(127, byte(1+i/(250*250)), byte(i/250%250), byte(1+i%250)),
		}
	}
	return out, nil
}

// WriteEnrollList writes the devices as a factory line's enrollment list
// (docs/fleet.md, "Enrollment"): one JSON line each, as 'ferry-agent
// identity --json' prints it, with the Label label.
func WriteEnrollList(w io.Writer, devs []*Device) error {
	enc := json.NewEncoder(w)
	for _, d := range devs {
		der, err := x509.MarshalPKIXPublicKey(d.Key.Public())
		if err != nil {
			return err
		}
		kind := LabelPoll
		if d.Download {
			kind = LabelDownload
		}
		if err := enc.Encode(map[string]any{
			"id":         d.ID,
			"algorithm":  "ed25519",
			"publicKey":  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
			"name":       d.Name,
			"deviceType": DeviceType,
			"labels":     map[string]string{Label: kind},
		}); err != nil {
			return err
		}
	}
	return nil
}
