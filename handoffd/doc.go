// Package handoffd moves a VM's disk and memory from one cloudlet to another
// over the overlay, sending only what the destination cannot rebuild from a
// base image both sides already hold.
//
// The sender scans each image in 4 KiB blocks against its base, drops zero
// blocks, blocks equal to any base block (disk or memory, by SHA-256) and
// blocks already sent (one table for all of them), optionally XORs the rest
// against the base block at the same offset, and compresses them in
// independent blobs whose codec can change from one blob to the next. The
// stages run concurrently, joined by bounded channels, in a randomised block
// order. An adapter measures each stage's CPU cost and output ratio and the
// network rate from the receiver's acks, and every few seconds (at once on a
// bandwidth change) picks the mode that maximises min(compute rate, network
// rate).
//
// The receiver rebuilds every image on a copy of its base, checks every
// block's hash and a whole-image digest, and only then renames the result
// into place: an interrupted handoff leaves nothing that could be resumed.
//
// The same pipeline serves a plain pair of image files (base, current) and a
// QEMU VM (qemu.go): guest RAM in a shared file, the disk as a qcow2 overlay
// over the base, the device state from QEMU's own migration stream.
package handoffd
