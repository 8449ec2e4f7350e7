// Package display formats values for people the same way in every report
// ferry prints: the CLI's listings and the audit's text and HTML reports.
package display
