// Package outpath holds the one rule for every file a command writes: it
// is never one of the command's own inputs, and an existing file is
// replaced only when the user says so (--force).
//
// An output is an input when the paths name the same file (os.SameFile, so
// a symbolic or hard link to an input counts) or when the output would be
// made inside an input directory (a tree being packed). Check runs before
// anything is read or written; the errors are typed so a command can
// print the right hint.
package outpath
