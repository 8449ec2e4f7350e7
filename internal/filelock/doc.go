// Package filelock takes exclusive advisory locks on files (flock(2)), the
// kind libubootenv's fw_printenv takes on its lock file, so the agent and
// the U-Boot tools never write the environment at the same time, and two
// agent commands never run one install over another.
package filelock
