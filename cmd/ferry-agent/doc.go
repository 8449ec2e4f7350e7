// Command ferry-agent is the device side of ferry: it installs signed
// bundles into the inactive A/B slot, checks the new system at boot and
// commits it or rolls back. Every command is a thin layer over package
// agent.
package main
