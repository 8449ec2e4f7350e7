// Command ferry is the host tool: it makes keys, packs and signs update
// bundles, and checks them. Every command is a thin layer over the bundle
// and verify packages.
package main
