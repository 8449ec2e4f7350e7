package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/agent"
)

func newIdentityCommand(s *streams, g *globalOptions) *cobra.Command {
	var o jsonOptions
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Print this device's id, public key and age recipient (its keys are made at the first start)",
		Long: `Print the device's id, public key and age recipient. The device signs its
check-ins with its own Ed25519 key, [identity] key in the configuration
(default STATE_DIR/identity/device.key, mode 0600): made at the first start,
or provisioned at the factory (e.g. 'openssl genpkey -algorithm ed25519'). The
id is the hex SHA-256 of the public key (as 'ferry key show' prints it).

Bundles may be encrypted to the device: its age X25519 identity, [identity]
age_key (default STATE_DIR/identity/device.age, mode 0600, as age-keygen
writes it), is made at the first start too, or provisioned. Its recipient
(age1…) is what 'ferry bundle create --encrypt-to' takes; a file of
'identity --json' lines serves as --encrypt-to-file.

A mirror records a device's check-ins once it is enrolled: collect the
output of 'ferry-agent identity --json' at the factory line, one line per
device, and enroll them with 'ferry mirror devices enroll DIR --file FILE';
or approve the device after its first check-in ('ferry mirror devices
approve DIR ID'); or append the line to a stick's ferry/identities.jsonl
('ferry-agent identity --json >> /media/stick/ferry/identities.jsonl'),
which 'ferry mirror ingest DIR STICK --enroll' enrolls.`,
		Args: args(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error { return runIdentity(s, g, o) },
	}
	o.addFlags(cmd, "print the identity as JSON (one line, for an enrollment list)")
	return cmd
}

// runIdentity prints the device's identity, making its key if needed.
func runIdentity(s *streams, g *globalOptions, o jsonOptions) error {
	cfg, err := g.load(s)
	if err != nil {
		return err
	}
	id, err := agent.LoadIdentity(cfg)
	if err != nil {
		return err
	}
	if id.Created {
		fmt.Fprintf(s.log, "made the device key %s\n", id.KeyFile)
	}
	if id.AgeCreated {
		fmt.Fprintf(s.log, "made the device's age identity %s\n", id.AgeKeyFile)
	}
	if o.asJSON {
		// One line, so a factory line appends it to its enrollment list.
		return json.NewEncoder(s.out).Encode(id)
	}
	fmt.Fprintf(s.out, "device id    %s\nalgorithm    %s\nkey file     %s\n", id.ID, id.Algorithm, id.KeyFile)
	if id.Name != "" {
		fmt.Fprintf(s.out, "name         %s\n", id.Name)
	}
	fmt.Fprintf(s.out, "device type  %s\nrecipient    %s\nage key file %s\n%s", id.DeviceType, id.AgeRecipient, id.AgeKeyFile, id.PublicKey)
	return nil
}

func newCheckinCommand(s *streams, g *globalOptions) *cobra.Command {
	var o jsonOptions
	cmd := &cobra.Command{
		Use:   "checkin",
		Short: "Check in with the mirror now: report what the device runs, signed with its key",
		Long: `Send the mirror ([mirror] url) a check-in now, as 'run' does after each poll:
the device's inventory (device type, every installed component and its
version, agent version, slot state, the last install's result and error,
free space, uptime), signed with the device's key for this mirror (its
mirror TUF root) and the next counter. Useful at the factory line, to see
that a device reaches its mirror and is enrolled.

A mirror that has not enrolled the device lists it as pending; the
command says so and succeeds. A refused check-in (a revoked key, a mirror
TUF root of another mirror, ...) fails with the mirror's reason.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheckin(cmd.Context(), s, g, o) },
	}
	o.addFlags(cmd, "print the result as JSON")
	return cmd
}

// checkinResult is what 'ferry-agent checkin' prints.
type checkinResult struct {
	Mirror  string `json:"mirror"`
	Device  string `json:"device"`
	Status  string `json:"status"` // recorded or pending
	Message string `json:"message,omitempty"`
}

// runCheckin checks in with the configured mirror.
func runCheckin(ctx context.Context, s *streams, g *globalOptions, o jsonOptions) error {
	return withAgent(s, g, func(ag *agent.Agent) error {
		ans, err := ag.CheckIn(ctx, nil, nil)
		if err != nil {
			return err
		}
		id, err := ag.Identity()
		if err != nil {
			return err
		}
		res := checkinResult{Mirror: ag.Config().Mirror.URL, Device: id.ID, Status: "recorded"}
		if ans.Pending {
			res.Status, res.Message = "pending", ans.Message
		}
		if o.asJSON {
			return writeJSON(s.out, res)
		}
		if ans.Pending {
			fmt.Fprintf(s.out, "device %s is pending on %s: an operator enrolls it with 'ferry mirror devices approve DIR %s'\n", id.ID, res.Mirror, id.ID[:16])
			return nil
		}
		fmt.Fprintf(s.out, "checked in with %s as device %s: recorded\n", res.Mirror, id.ID)
		return nil
	})
}
