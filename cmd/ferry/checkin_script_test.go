package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ferry-update/ferry/transport/checkin"
)

// cmdSignCheckin: signcheckin KEY ROOT COUNTER OUT [FIELD=VALUE...] writes
// to OUT the signed check-in a device whose key is KEY (PEM PKCS#8
// Ed25519, as openssl genpkey writes it) makes for the mirror whose TUF
// root is ROOT, as ferry-agent signs it. FIELD is name, deviceType,
// bundle, version, result or error; the word tamper instead changes the
// version after signing, keeping the signature (a forgery).
func cmdSignCheckin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 4 {
		ts.Fatalf("usage: signcheckin KEY ROOT COUNTER OUT [FIELD=VALUE...]")
	}
	blk, _ := pem.Decode([]byte(ts.ReadFile(args[0])))
	if blk == nil {
		ts.Fatalf("%s: no PEM", args[0])
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	ts.Check(err)
	key := k.(ed25519.PrivateKey)
	mirror, err := checkin.MirrorID([]byte(ts.ReadFile(args[1])))
	ts.Check(err)
	counter, err := strconv.ParseUint(args[2], 10, 64)
	ts.Check(err)
	pub := key.Public().(ed25519.PublicKey)
	inv := &checkin.Inventory{Mirror: mirror, Device: checkin.DeviceID(pub), PublicKey: pub, Counter: counter, Time: time.Now().UTC(),
		Name: "gw-0001", DeviceType: "board-a", AgentVersion: "v1.0.0", Bundle: "gateway", Version: "1.4.2",
		Components: []checkin.Component{{Name: "gateway", Version: "1.4.2", Slot: "a"}, {Name: "app-conf", Version: "1.2.0"}},
		Slot:       checkin.SlotState{Booted: "a"}, Result: "committed", FreeBytes: 3 << 30, UptimeSeconds: 7260}
	tamper := false
	for _, a := range args[4:] {
		f, v, _ := strings.Cut(a, "=")
		switch f {
		case "tamper":
			tamper = true
		case "name":
			inv.Name = v
		case "deviceType":
			inv.DeviceType = v
		case "bundle":
			inv.Bundle = v
		case "version":
			inv.Version = v
		case "result":
			inv.Result = v
		case "error":
			inv.Error = v
		default:
			ts.Fatalf("signcheckin: no field %q", f)
		}
	}
	b, err := checkin.Sign(inv, key)
	ts.Check(err)
	if tamper {
		var env checkin.Envelope
		ts.Check(json.Unmarshal(b, &env))
		inv.Version = "9.9.9"
		env.Payload, err = json.Marshal(inv)
		ts.Check(err)
		b, err = json.Marshal(env)
		ts.Check(err)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[3]), b, 0o644))
}
