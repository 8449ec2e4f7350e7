// Package display formats values for people the same way in every report
// ferry prints: the CLI's listings and the audit's text and HTML reports.
// Text from outside (bundles, devices, servers) goes through Untrusted
// before it reaches a terminal; a program's log goes through LogWriter.
package display
