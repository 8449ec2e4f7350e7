// Package mountinfo reads /proc/self/mountinfo (proc(5)): which filesystem
// is mounted where, from which device. Both the host tool (refusing to
// overwrite a mounted disk) and the device side (finding a mounted stick)
// need it, so it is pure Go with no dependencies.
package mountinfo
