# ferry A/B slot selection and boot counting for a stock U-Boot, as a boot
# script: for a U-Boot built without CONFIG_BOOTCOUNT_LIMIT (Debian's
# builds, most vendor builds), or whose environment Linux cannot reach.
# Build it with
#
#   mkimage -A arm64 -O linux -T script -C none -d boot.cmd boot.scr
#
# and put boot.scr on the boot partition (FAT), where U-Boot's stock boot
# command (distro_bootcmd) finds and runs it. Do not combine it with
# ferry-env.txt on a U-Boot with CONFIG_BOOTCOUNT_LIMIT: both would count.
#
# The state is not U-Boot's own environment but a file beside this script,
# ferry.env: a U-Boot environment image (CRC32 and variables, single copy,
# 0x1000 bytes; mkenvimage makes the first one), which the ferry agent and
# fw_printenv/fw_setenv read and write through an fw_env.config line such as
#
#   /boot/firmware/ferry.env  0x0  0x1000
#
# The same protocol as examples/grub/grub.cfg (agent/bootenv):
#
#   ferry_slot         slot to boot: a or b (anything else means a)
#   upgrade_available  1 while ferry_slot is on trial, else 0
#   bootcount          attempts to boot the trial slot so far
#   bootlimit          attempts allowed, 1 to 9 (default 1)
#
# While upgrade_available=1, every boot counts one attempt in ferry.env
# *before* booting, so a kernel panic, hang (with a watchdog) or power cut
# still counts. Once bootcount exceeds bootlimit the script boots the other
# slot, and keeps doing so without writing anything more; the variables
# stay as they are so the agent sees the fallback and rolls back. A healthy
# trial slot commits (upgrade_available=0).
#
# Needs: CMD_FAT with FAT_WRITE (or another file system U-Boot can write),
# CMD_IMPORTENV, CMD_EXPORTENV, CMD_EXT4 (the slots), CMD_BOOTI.

# Adapt to the board: each slot is a partition of the device this script
# was loaded from (devtype, devnum and distro_bootpart are set by
# distro_bootcmd), partition 2 slot a and partition 3 slot b, named rootfs_a
# and rootfs_b, each an ext4 root file system with its kernel and initramfs
# in /boot. Slots are found by partition, not by file system label or UUID:
# a bundle's image is written to either slot and carries one label.
setenv ferry_part_a 2
setenv ferry_part_b 3
setenv ferry_env ferry.env
setenv ferry_env_size 0x1000
if test -z "${console}"; then
  setenv console ttyAMA0
fi
setenv ferry_dev "${devtype} ${devnum}"
setenv ferry_bootdev "${devtype} ${devnum}:${distro_bootpart}"
# The state is staged at kernel_addr_r, which the kernel overwrites later;
# scriptaddr holds this script while it runs.
setenv ferry_addr ${kernel_addr_r}

# Import only our variables, so nothing else in the file can steer U-Boot.
setenv ferry_slot
setenv upgrade_available
setenv bootcount
setenv bootlimit
setenv ferry_env_ok 0
if load ${ferry_bootdev} ${ferry_addr} ${ferry_env}; then
  if env import -c ${ferry_addr} ${ferry_env_size} ferry_slot upgrade_available bootcount bootlimit; then
    setenv ferry_env_ok 1
  fi
fi
if test "${ferry_env_ok}" != 1; then
  # Nothing is known: boot slot a, count nothing, write nothing.
  echo "ferry: no valid ${ferry_env} on ${ferry_bootdev}; booting slot a"
fi

if test "${ferry_slot}" != b; then
  setenv ferry_slot a
fi
setenv ferry_boot ${ferry_slot}

if test "${upgrade_available}" = 1; then
  if test -z "${bootlimit}"; then
    setenv bootlimit 1
  fi
  if test -z "${bootcount}"; then
    setenv bootcount 0
  fi
  if test "${bootcount}" -le "${bootlimit}"; then
    # Count by table, as the GRUB script does (setexpr would count in
    # hexadecimal): an unknown value, or a count past 9, becomes 99, which
    # exceeds any limit, so a garbled count falls back to the known-good
    # slot instead of looping.
    if test "${bootcount}" = 0; then setenv bootcount 1
    elif test "${bootcount}" = 1; then setenv bootcount 2
    elif test "${bootcount}" = 2; then setenv bootcount 3
    elif test "${bootcount}" = 3; then setenv bootcount 4
    elif test "${bootcount}" = 4; then setenv bootcount 5
    elif test "${bootcount}" = 5; then setenv bootcount 6
    elif test "${bootcount}" = 6; then setenv bootcount 7
    elif test "${bootcount}" = 7; then setenv bootcount 8
    elif test "${bootcount}" = 8; then setenv bootcount 9
    else setenv bootcount 99
    fi
    echo "ferry: slot ${ferry_slot} on trial, attempt ${bootcount} of ${bootlimit}"
    # If the write fails the attempt is not counted, and a slot that never
    # comes up is retried forever.
    env export -c -s ${ferry_env_size} ${ferry_addr} ferry_slot upgrade_available bootcount bootlimit
    save ${ferry_bootdev} ${ferry_addr} ${ferry_env} ${ferry_env_size}
  fi
  if test "${bootcount}" -gt "${bootlimit}"; then
    if test "${ferry_slot}" = a; then
      setenv ferry_boot b
    else
      setenv ferry_boot a
    fi
    echo "ferry: slot ${ferry_slot} failed ${bootcount} times, booting slot ${ferry_boot}"
  fi
fi

if test "${ferry_boot}" = b; then
  setenv ferry_part ${ferry_part_b}
else
  setenv ferry_part ${ferry_part_a}
fi
# root=PARTLABEL= names the slot to the kernel (or its initramfs);
# ferry.slot tells the agent which slot actually booted; panic=10 turns a
# kernel panic into a reboot, which counts the next attempt. The device
# tree is the board's own (fdtcontroladdr) unless the slot carries
# /boot/${fdtfile}.
setenv bootargs "console=${console} root=PARTLABEL=rootfs_${ferry_boot} ro panic=10 ferry.slot=${ferry_boot}"
setenv ferry_fdt ${fdtcontroladdr}
if test -n "${fdtfile}"; then
  if load ${ferry_dev}:${ferry_part} ${fdt_addr_r} /boot/${fdtfile}; then
    setenv ferry_fdt ${fdt_addr_r}
  fi
fi
echo "ferry: booting slot ${ferry_boot} (${ferry_dev}:${ferry_part})"
if load ${ferry_dev}:${ferry_part} ${kernel_addr_r} /boot/vmlinuz; then
  if load ${ferry_dev}:${ferry_part} ${ramdisk_addr_r} /boot/initrd.img; then
    booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${ferry_fdt}
  fi
fi
# A slot that cannot be loaded or booted is a failed attempt: reset, so
# the next boot counts it and eventually falls back.
echo "ferry: slot ${ferry_boot} did not boot; resetting"
sleep 5
reset
