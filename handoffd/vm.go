package handoffd

import (
	"context"
	"errors"
)

// VMMeta is what the destination needs, beside the images and the device
// state, to start the same VM: the machine shape and the boot files, the
// latter as base cache ids so both cloudlets hold them already.
type VMMeta struct {
	MemoryMiB int    `json:"memory_mib,omitempty"`
	CPUs      int    `json:"cpus,omitempty"`
	Machine   string `json:"machine,omitempty"`
	Kernel    string `json:"kernel,omitempty"` // base id
	Initrd    string `json:"initrd,omitempty"` // base id
	Append    string `json:"append,omitempty"`
	Disk      bool   `json:"disk,omitempty"` // image "disk" is attached as virtio disk
	// Discard: the disk's drive passes the guest's discards on (TRIM,
	// discard=unmap); the destination attaches it the same way, so the
	// guest's fstrim keeps freeing blocks there (holes in its raw image)
	// and a later handoff from there leaves them out too.
	Discard bool `json:"discard,omitempty"`
}

// VM is what the sender needs from a running VM: stop it and hand over its
// device state for the final round, and let it run again when a handoff
// fails after the stop.
type VM interface {
	Stop(ctx context.Context) (state []byte, err error)
	Resume(ctx context.Context) error
}

// ErrSourceResumed is wrapped in Send's error when the handoff failed (or
// was interrupted) after the source VM was stopped and before the
// destination was told to run its copy: the source VM runs again, and the
// handoff can be sent again under the same id.
var ErrSourceResumed = errors.New("the source VM runs again (the destination was never told to run its copy)")
