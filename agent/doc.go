// Package agent is the device side of ferry: it installs a bundle into the
// inactive A/B slot (and files targets), drives the boot protocol of
// package bootenv, and commits or rolls back, surviving a power cut at any
// point.
//
//	cfg, err := agent.LoadConfig("/etc/ferry/agent.toml")
//	a, err := agent.Open(cfg)        // takes the state directory's lock
//	defer a.Close()
//	src, err := a.OpenSource(ctx, "oci://mirror.local:5000/gateway:1.4.2", nil)
//	res, err := a.Install(ctx, src, "oci://mirror.local:5000/gateway:1.4.2")
//	res, err = a.BootCheck(ctx)      // at every boot
//	res, err = a.Commit()            // or a.Rollback(ctx)
//	res, err = a.RollbackPrevious(ctx) // back to the release in the other slot
//	st, err := a.Status()
//
// # The state machine
//
// An install is recorded in a journal (STATE_DIR/journal.json) and goes
// through these states; each is durable before the next step starts:
//
//	verifying   the head is read and judged: signatures and threshold
//	            (verify.CheckHead), device type, version policy, targets,
//	            slot devices. A refusal ends here: *RefusedError.
//	writing     payloads stream into the inactive slot (opened without
//	            truncation when it is a device), beside the files trees
//	            in use, and to update modules (Download), each checked
//	            against its signed digests at its end.
//	written     every payload is written, fsynced and verified.
//	            Activation: files targets are switched (symlink rename),
//	            update modules run ArtifactInstall, then the boot
//	            environment asks for one try of the new slot
//	            (bootenv.Boot.MarkTentative) -- always the last change.
//	tentative   activated.
//	rebooting   the reboot command was run (A/B installs, and modules that
//	            answered NeedsArtifactReboot "Automatic"; a module that
//	            answered "Yes" runs ArtifactReboot). Other installs skip it
//	            and go on to their health check at once.
//	booted      the new system runs: modules that needed the reboot run
//	            ArtifactVerifyReboot, then the health checks run.
//	committing  they passed: modules run ArtifactCommit (one that fails it
//	            rolls the install back), then bootenv.Boot.Commit (the
//	            commit point), STATE_DIR/installed.json, the previous tree
//	            is kept as DIR/previous and older ones are pruned, and the
//	            modules run Cleanup.
//	rolling-back the old slot and trees are selected again; modules run
//	            ArtifactRollback (if they support it), ArtifactFailure and
//	            Cleanup.
//	committed | rolled-back | failed   the install is over.
//
// The installed-components record (STATE_DIR/installed.json, see
// "Components") changes only when an install commits; it is what the
// version policy and the bundles' depends are judged against. Every file
// in the state directory is replaced the durable way: write a temporary
// file, fsync it, rename it over the old one, fsync the directory.
//
// # Components
//
// Versions are per component (bundle/FORMAT.md §6.2): a bundle provides
// itself at its version and the components of its provides. Before a
// payload byte is written, every component it provides must be at or
// above its installed version (its own component strictly above), unless
// [policy] or [policy.components.NAME] allows a downgrade or re-install
// of that component; and every depends must be met (*VersionError,
// *DependencyError, both refusals).
//
// installed.json keeps the components in two places:
//
//   - per slot, for bundles with an A/B (rootfs) payload: the commit
//     replaces the whole set of the slot it wrote, since a new root
//     filesystem brings all of them and takes away the rest;
//   - globally, for bundles with only files and module payloads: the
//     commit replaces each of their components.
//
// A component lives in one place: recorded in one, it leaves the other.
// The installed components are those of the slot that boots plus the
// global ones, so after a rollback or a fallback of the bootloader the
// old slot's components are the ones judged and reported (Status lists
// them). The record of the other slot describes what it held when it was
// last committed.
//
// An older agent's installed.json held one version. On the first start
// (Open) it becomes a component, written back durably before anything
// reads it: of the slot the last install wrote when the journal shows an
// A/B install of that very bundle, else a global one.
//
// # Recovery
//
// Every command first reconciles the journal with the boot environment,
// with one rule per state, so the outcome of an interruption never
// depends on timing:
//
//   - verifying, writing: nothing was activated (the boot environment and
//     the files links are untouched; the inactive slot holds garbage).
//     The install is marked failed, partial trees are removed, update
//     modules run Cleanup.
//   - written: if the boot environment already selects the new slot on
//     trial, activation got to its last step: it is completed (links
//     switched again) and the install becomes tentative. Otherwise
//     whatever part of activation ran is undone (update modules marked
//     installed run ArtifactRollback and ArtifactFailure) and the install
//     fails.
//   - tentative, rebooting, booted: if the bootloader fell back (bootcount
//     over bootlimit) the install is rolled back and recorded as "rolled
//     back by the bootloader"; if the boot environment no longer selects
//     the new slot, or was committed, outside ferry, the journal follows
//     it; otherwise the trial stands and boot-check decides.
//   - committing, rolling-back: finished; each step is idempotent.
//
// So after a power cut at any point the bootloader boots either the old
// slot, or the new slot on trial with the old one complete behind it, and
// the agent ends the install one way or the other.
//
// # Rolling back a committed release
//
// At each commit of an A/B install, installed.json records the release
// committed into that slot (Installed.Releases: name, version, manifest
// digest, provides, and each A/B payload's target, size and signed content
// digest). RollbackPrevious (ferry-agent rollback --previous) goes back to
// the release recorded for the other slot: it reads the slot back and
// checks it against those sizes and digests, and refuses (*PreviousError,
// nothing changed) when the slot holds something else: an install that
// failed or was rolled back wrote it since, or it was changed outside
// ferry. The bytes decide; the journal only explains. Otherwise the
// journal records it (Journal.Previous) from state written on, and it
// goes through the same states as an install: the slot is marked on
// trial, the reboot command runs, boot-check commits it or the bootloader
// falls back. Files targets and update modules are left as they are.
//
// The version policy does not apply to it. The downgrade refusal stops an
// old signed bundle from being fed to the device to bring back a
// vulnerable release; rollback --previous is run on the device itself, to
// a release this device already trusted, installed and committed, whose
// bytes are checked against the digests its signatures covered. The
// signatures are not checked again (the bundle is not kept), so a release
// whose key was revoked since can still be rolled back to.
//
// # Which slot is booted
//
// In order: Config.BootedSlot (ferry-agent --booted-slot); "ferry.slot=a"
// or "=b" on the kernel command line (boot.cmdline, default /proc/cmdline),
// which a real device's bootloader passes; otherwise what the boot
// environment makes the bootloader boot: its slot variable, or the other
// slot once bootcount exceeds bootlimit (an unset variable means a). The
// last is the simulation's view: with file slots nothing really reboots, so
// "rebooting" is the reboot command having run, and the next command sees
// the new slot as booted.
//
// # Payloads
//
// A payload's target names a [slots.NAME] table. rootfs payloads go to an
// A/B pair (a and b: block devices or files); files payloads to a
// directory laid out as DIR/current -> releases/NAME, with the new tree
// extracted beside the old one and switched in by renaming a new symlink
// over current.
//
// # Delta installs
//
// A rootfs payload may be chunked (bundle/FORMAT.md §15): content-defined
// chunks, one zstd frame each, listed in a signed chunk index. After
// writing such a payload into a slot (full or delta), the agent keeps its
// index as STATE_DIR/chunks/TARGET.SLOT.idx: the file is removed (and
// the directory synced) before the slot is written, and written the
// durable way once the slot holds the verified content, so an index never
// describes a slot that holds something else, whatever the power does.
//
// InstallFrom (ferry-agent install, and the mirror poll of ferry-agent
// run) reads a bundle from a registry, a ferry mirror or a mirror store
// or stick layout blob by blob (transport.Blobs). For each chunked
// rootfs payload whose booted slot's index is kept it plans a delta:
// the archive stream then leaves that payload's parts out
// (bundle.ReaderOptions.Omitted), the head is judged as always, and the
// content is assembled in order from the booted slot's chunks, each read
// and re-hashed against the signed index before use (a chunk that no
// longer matches, a slot modified or rotted, is fetched instead), a
// chunk the base lacks that occurred before in the payload read back from
// where it was just written in the target slot (re-hashed too; fetched if
// it does not match), and the other chunks, fetched by bounded Range
// requests (runs of adjacent
// chunks share one request; a dropped connection resumes), decompressed
// and checked. The whole content is checked against the payload's signed
// size and digest before the install reaches written, so nothing is
// activated from a wrong chunk. A chunk the source does not have is an
// error (errFetch, a failure, not a refusal) and the install fails with
// nothing activated.
//
// From a ferry mirror (an oci:// source) the agent first asks for the
// delta stream from its slot's kept index to the payload's
// (transport.Blobs.DeltaStream, bundle/FORMAT.md §15.9): its head is
// read at planning, the index it carries checked against the manifest's
// digest of the index (and then not fetched again), and its records read
// as the slot is written, each chunk the base lacks decoded against the
// booted slot's bytes the record names and checked against the signed
// index. A record that does not check (the slot's bytes rotted, a
// changed stream) makes that chunk fetched by range; a stream that breaks
// (malformed, cut for good) makes every chunk after it fetched by range;
// a cut download resumes with a Range request. The log says which path
// each payload took: "delta stream from the mirror", or "no delta stream
// (...)" (a 404 from a registry or from a mirror that lacks the base) or
// "delta stream refused: ..." followed by "fetching the chunks by range",
// and at the end how many chunks the stream gave and how many bytes of it
// were read. The stream is read while the install is in its writing
// state, so the journal and its recovery are unchanged: a power cut
// leaves the install failed and the next attempt asks for the stream
// again (a mirror serves it from its cache).
//
// A stick built as a delta ('ferry media build --delta-from', FORMAT.md
// §15.7) marks the bundle delta-only: InstallStick then installs it only
// when every part the plan reads is on the stick (the parts holding the
// chunks its base lacks, all parts of other payloads), and otherwise
// writes a skipped report naming the bases the stick serves and the
// version the device runs, with nothing written.
//
// The state machine and its recovery are those of a full install: a power
// cut while writing leaves the new slot inactive and the install failed;
// the next attempt plans its delta again from the booted slot. Without a
// usable base (no index kept, as after an older agent or an unchunked
// bundle; a damaged index; one that shares under 10 % of the content)
// the payload is installed whole, and the log says why. A kept index of
// version 1 (bundle/FORMAT.md §15.4) stays a base for bundles with a
// version 2 index. Memory stays
// flat: one chunk (at most bundle.MaxChunkSize), one record's frame and
// dictionary, and the base index's digests are held at a time.
//
// # Update modules
//
// A module payload's target names an update module in [modules] dir
// (default /usr/share/mender/modules/v3), run through the Mender
// update-module protocol, version 3, by package agent/module, so modules
// written for Mender run unmodified. The journal records each module
// payload's file tree (WORK_DIR/payloads/NNNN/tree, NNNN the payload's
// index in the bundle; WORK_DIR defaults to STATE_DIR/modules) and how far
// it got, so that after a restart or a reboot the agent resumes the same
// session. The states run in Mender's order: ProvidePayloadFileSizes and
// Download while writing (the payload's tar stream is read to its end, so
// its digest is checked before anything else runs); ArtifactInstall,
// NeedsArtifactReboot and SupportsRollback at activation;
// ArtifactReboot/ArtifactVerifyReboot around a reboot; ArtifactCommit, or
// ArtifactRollback and ArtifactFailure; Cleanup at the end. A failed
// download runs only Cleanup. Every module call is bounded by [modules]
// timeout. Modules must accept a state called twice: a power cut can
// repeat one. ArtifactRollbackReboot and ArtifactVerifyRollbackReboot are
// not run: after rolling back a module whose install took effect through
// a reboot, the agent runs its reboot command.
//
// A module that cannot roll back (SupportsRollback: No) leaves what it
// installed in place when the install is rolled back; the install's
// result says so.
//
// # Trust root and time
//
// With [trust] root the agent keeps every root it accepted above the
// provisioned one in STATE_DIR/roots/N.root.json (the last also as
// STATE_DIR/root.json) and at each Open re-proves that chain from the
// provisioned root by the chain rule; a kept root that fails is logged as a
// WARNING, removed, and the agent holds the highest root it could prove
// (KeptRootError, Status().Trust.KeptRootRefused). It judges expiry with the
// device's clock, but never with a time earlier than the newest it has seen
// (STATE_DIR/clock, the last install, the journal, its build time), so a
// clock that resets neither revives an expired root nor refuses every
// bundle (verify/TRUST.md §8, §9).
//
// # Identity and check-ins
//
// The device has an Ed25519 key of its own (LoadIdentity, Identity):
// [identity] key, default STATE_DIR/identity/device.key, made at the
// first use when the default file is missing, mode 0600; a provisioned
// key must exist. Its id is checkin.DeviceID of the public key. CheckIn
// reports the device's Inventory (status without reconciling: a check-in
// reports, it never acts) signed with that key, for the mirror whose TUF
// root the device trusts (STATE_DIR/tuf/root.json, else [mirror]
// tuf_root), with a counter kept in STATE_DIR/identity/counter and
// written durably before the check-in leaves: max(last+1, the agent's
// clock in ms). docs/fleet.md specifies the protocol.
//
// # Encrypted payloads
//
// Beside its signing key the device holds an age X25519 identity
// ([identity] age_key, default STATE_DIR/identity/device.age, made at the
// first use like the key, mode 0600; Identity.AgeRecipient is its
// recipient). A bundle whose payloads are encrypted (bundle/FORMAT.md
// §6.3) is judged like any other in state verifying -- signatures, device
// type, version policy -- and only then is its file key unwrapped with the
// identity: a device that is not a recipient refuses the bundle there
// (*RefusedError wrapping *bundle.NotRecipientError) before a payload
// byte is read or a target opened. While writing, the payloads decrypt as
// they stream, each 64 KiB chunk authenticated before it is used, and are
// checked against their signed digests like any payload; a failure leaves
// the install to be undone as in any other, and nothing is activated.
//
// # Managed devices
//
// With [mirror] managed, a poll installs only what the mirror assigns
// the device (FetchAssignment, docs/fleet.md §11): the signed check-in
// goes to the assignment endpoint, the answer must verify with an
// assignment key the verified TUF targets publish, be for this device and
// mirror, unexpired and not older than the last accepted (its counter is
// kept in STATE_DIR/identity/assignment), and name a bundle the targets
// list with that manifest digest; otherwise an *AssignmentError, and
// nothing is installed. The install then judges the bundle as every
// install does (release signatures under the trust root, device type,
// versions). The journal keeps the assignment's deployment and counter,
// and check-ins report them with the result (checkin.Install), so the
// mirror counts the result against the deployment.
//
// A stick put into a managed device is judged the same way
// (installStickAssigned, docs/fleet.md §12): the device installs only
// the bundle its own assignment on the stick (ferry/assignments/<device
// id>.json) names, checked with the assignment keys of the mirror
// metadata the stick carries (ferry/tuf/, verified offline from the
// device's mirror root: tufclient.CheckOffline); with none for it, it
// skips the stick and its report says why; a refused one is an
// *AssignmentError and a failure report.
package agent
