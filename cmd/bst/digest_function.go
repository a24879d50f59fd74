package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/spf13/cobra"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

// functionFlag is --digest-function: the digest function a command hashes
// with, names in its requests (digest_function, blobs/blake3/… resource
// names) and reads DIGEST arguments in. The zero value is SHA-256.
type functionFlag struct {
	fn  digest.Function
	set bool // given on the command line
}

// addFunctionFlag adds --digest-function to cmd.
func addFunctionFlag(cmd *cobra.Command, f *functionFlag) {
	cmd.Flags().Var(f, "digest-function", "digest function to hash with and ask castd in: "+strings.ReplaceAll(digest.AllFunctions.String(), ",", ", "))
}

func (f *functionFlag) String() string { return f.fn.String() }

func (f *functionFlag) Type() string { return "FUNCTION" }

// Set parses a name digest.ParseFunction takes; cobra reports an error
// as a usage error naming the flag.
func (f *functionFlag) Set(s string) error {
	fn, ok := digest.ParseFunction(s)
	if !ok {
		return fmt.Errorf("unknown digest function %q (one of %s)", s, strings.ReplaceAll(digest.AllFunctions.String(), ",", ", "))
	}
	f.fn, f.set = fn, true
	return nil
}

// parseDigest reads a DIGEST argument: HASH/SIZE in the flag's function,
// or FUNCTION/HASH/SIZE, the form bst prints BLAKE3 digests in, whose
// function must agree with --digest-function when that is given. A
// malformed digest is a usage error.
func (f functionFlag) parseDigest(s string) (digest.Digest, error) {
	fn := f.fn
	parts := strings.Split(s, "/")
	if len(parts) == 3 {
		named, ok := digest.ParseFunction(parts[0])
		switch {
		case !ok:
			return digest.Digest{}, usagef("digest %q: unknown digest function %q", s, parts[0])
		case f.set && named != f.fn:
			return digest.Digest{}, usagef("digest %q is a %s digest, but --digest-function is %s", s, named, f.fn)
		}
		fn, parts = named, parts[1:]
	}
	if len(parts) != 2 {
		return digest.Digest{}, usagef("digest %q: expected HASH/SIZE", s)
	}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return digest.Digest{}, usagef("digest %q: size %q is not a number", s, parts[1])
	}
	d, err := digest.NewIn(fn, parts[0], n)
	if err != nil {
		return digest.Digest{}, usagef("digest %q: %s", s, message(err))
	}
	return d, nil
}

// protoDigestIn renders a digest of a message in fn as bst prints digests:
// HASH/SIZE, with the function first where it cannot be told from the
// hash (blake3/HASH/SIZE).
func protoDigestIn(fn digest.Function, d *repb.Digest) string {
	return digest.Digest{Hash: d.GetHash(), Size: d.GetSizeBytes(), Func: fn}.String()
}

// uploadDir uploads the tree at dir with every digest in fn.
func uploadDir(ctx context.Context, cas store.CAS, fn digest.Function, dir string) (digest.Digest, error) {
	if fn != digest.SHA256 {
		return digest.Digest{}, fmt.Errorf("%s: directories are uploaded in sha256 only (this bst lacks localexec.UploadDirIn)", dir)
	}
	return localexec.UploadDir(ctx, cas, dir)
}
