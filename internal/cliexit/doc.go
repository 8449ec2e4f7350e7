// Package cliexit is how ferry and ferry-agent end: the exit codes that
// scripts rely on, and the error and hint lines on stderr.
package cliexit
