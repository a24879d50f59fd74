// Package localexec runs REAPI actions on this machine: it stages an
// action's input root from a CAS into a fresh directory, runs the command
// (optionally inside a bubblewrap sandbox), and stores the outputs, stdout
// and stderr back into the CAS, returning the ActionResult.
//
// The package only ever talks to the store.CAS it is given; choosing whether
// an action runs here or remotely, and caching the result, is the caller's
// business (pkg/proxy).
//
// # Digest functions
//
// An action is in one digest function, the one its ExecuteRequest named:
// RunIn reads the Command, the input root and every Directory and file
// below it as digests of that function, and computes every digest of the
// result with it (output files, each output directory's Tree and the
// Directories in it, stdout and stderr). Run, RunStreaming and RunSysroot
// are SHA-256. On the client side UploadDirIn and PutMessageIn hash with a
// given function, UploadAction with its input root's, and MaterializeDir
// reads a tree in its root digest's function.
//
// # Output while a command runs
//
// stdout and stderr are captured to files in the staging directory and
// stored as blobs at the end. A caller that wants to see the output as it
// is produced passes writers to RunStreaming: the
// command then writes into pipes whose data goes to the capture files and
// to the writers, so the stored blobs do not change.
//
// # Sandboxes
//
// sandbox: none (the default) runs the command as the castd user with
// exactly the action's environment, in its own process group, in a fresh
// directory holding only the input root. It protects against accidents
// between actions — leftovers of earlier actions, inherited environment
// variables, stray processes surviving a timeout or a cancellation — but not
// against the command itself: it can read and write anything the castd user
// can, including the castd store, and it can use the network.
//
// sandbox: bwrap runs the command under bubblewrap (Debian package
// bubblewrap) with a private network namespace (no network at all, loopback
// only), a private PID namespace, the whole host file system mounted
// read-only, a fresh /dev, /proc and a private empty /tmp, and only the
// staged input root writable. An action therefore cannot reach the network,
// cannot modify the castd store, the user's home or other actions' trees,
// and cannot leave processes behind. It still runs as the castd user, can
// read whatever that user can read (secrets in the home directory
// included), and shares the kernel: it is a guard against undeclared
// inputs, network access and accidental damage, not a security boundary
// against hostile code. bwrap needs unprivileged user namespaces (or root);
// New checks that bwrap is installed, and an action fails with the error
// bwrap reports if namespaces are unavailable.
//
// RunSysroot uses the same bwrap sandbox the other way round, for an input
// root that is a whole system image (BuildStream's sandboxes, through
// castd as buildbox-run): the staged tree is mounted as / and the host's
// file system is not visible at all, except for the bind mounts the caller
// names; /proc, /dev and /tmp are bwrap's.
package localexec
