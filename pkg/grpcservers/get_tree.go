package grpcservers

import (
	"context"
	"fmt"
	"strconv"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

const (
	// defaultTreePageSize applies when a GetTree request has page_size 0;
	// maxTreePageSize caps larger requests.
	defaultTreePageSize = 1000
	maxTreePageSize     = 10000
)

// GetTree streams the directories under root_digest breadth-first, each
// distinct directory once, in pages of page_size directories (and at most
// half the batch limit in bytes). Every page but the last carries a
// next_page_token; a later call with that token resumes there. Tokens are
// stateless (the index of the next directory), so resuming re-reads the
// directories before it: cost proportional to the tree up to the token.
// Missing subdirectories are left out; a missing root is NOT_FOUND. The
// root and every child directory digest are read under the request's
// digest function (a token holds no digest, only that index).
func (s *casServer) GetTree(req *repb.GetTreeRequest, stream repb.ContentAddressableStorage_GetTreeServer) error {
	fn, err := s.opts.requestFunction(req.GetDigestFunction(), req.GetRootDigest().GetHash())
	if err != nil {
		return err
	}
	root, err := digest.FromProtoIn(fn, req.GetRootDigest())
	if err != nil {
		return fieldError("root_digest", err)
	}
	skip, size, err := treePaging(req)
	if err != nil {
		return err
	}
	cas, err := s.backend.CAS(stream.Context(), req.GetInstanceName())
	if err != nil {
		return err
	}
	w := &treeWalk{ctx: stream.Context(), cas: cas, maxSize: s.opts.MaxBatchTotalSizeBytes, queue: []digest.Digest{root}, seen: digest.NewSet(root)}
	p := &treePager{stream: stream, size: size, maxBytes: int(s.opts.MaxBatchTotalSizeBytes / 2), page: &repb.GetTreeResponse{}}
	for index := 0; ; index++ {
		dir, err := w.next()
		if err != nil {
			return err
		}
		if dir == nil {
			return p.flush("")
		}
		if index >= skip {
			if err := p.add(dir, index); err != nil {
				return err
			}
		}
	}
}

// treePaging validates page_token and page_size.
func treePaging(req *repb.GetTreeRequest) (skip, size int, err error) {
	if t := req.GetPageToken(); t != "" {
		if skip, err = strconv.Atoi(t); err != nil || skip < 0 {
			return 0, 0, status.Errorf(codes.InvalidArgument, "page_token %q was not issued by this server", t)
		}
	}
	switch size = int(req.GetPageSize()); {
	case size < 0:
		return 0, 0, status.Errorf(codes.InvalidArgument, "page_size %d is negative", size)
	case size == 0:
		size = defaultTreePageSize
	case size > maxTreePageSize:
		size = maxTreePageSize
	}
	return skip, size, nil
}

// treePager groups directories into GetTreeResponse pages.
type treePager struct {
	stream   repb.ContentAddressableStorage_GetTreeServer
	size     int
	maxBytes int
	bytes    int
	page     *repb.GetTreeResponse
}

// add appends dir, the index-th directory of the walk, sending the current
// page first when dir does not fit in it.
func (p *treePager) add(dir *repb.Directory, index int) error {
	n := proto.Size(dir)
	if len(p.page.Directories) == p.size || len(p.page.Directories) > 0 && p.bytes+n > p.maxBytes {
		if err := p.flush(strconv.Itoa(index)); err != nil {
			return err
		}
	}
	p.page.Directories = append(p.page.Directories, dir)
	p.bytes += n
	return nil
}

func (p *treePager) flush(token string) error {
	p.page.NextPageToken = token
	err := p.stream.Send(p.page)
	p.page, p.bytes = &repb.GetTreeResponse{}, 0
	return err
}

// treeWalk reads Directory messages breadth-first, each digest once.
type treeWalk struct {
	ctx     context.Context
	cas     store.CAS
	maxSize int64
	queue   []digest.Digest
	seen    digest.Set
	read    int
}

// next returns the next directory present in the CAS, or nil at the end.
// Only the root is required to exist.
func (w *treeWalk) next() (*repb.Directory, error) {
	for len(w.queue) > 0 {
		d := w.queue[0]
		w.queue = w.queue[1:]
		w.read++
		dir, err := w.readDirectory(d)
		if status.Code(err) == codes.NotFound && w.read > 1 {
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, c := range dir.GetDirectories() {
			cd, err := digest.FromProtoIn(d.Func, c.GetDigest()) // the request's function, the root's
			if err != nil {
				return nil, fieldError(fmt.Sprintf("directory %s: directories[%d].digest", d, i), err)
			}
			if !w.seen.Has(cd) {
				w.seen.Add(cd)
				w.queue = append(w.queue, cd)
			}
		}
		return dir, nil
	}
	return nil, nil
}

func (w *treeWalk) readDirectory(d digest.Digest) (*repb.Directory, error) {
	if d.Size > w.maxSize {
		return nil, status.Errorf(codes.FailedPrecondition, "directory %s is larger than max_batch_total_size_bytes %d", d, w.maxSize)
	}
	dir := &repb.Directory{}
	if err := store.ReadMessage(w.ctx, w.cas, d, dir); err != nil {
		return nil, err
	}
	return dir, nil
}
