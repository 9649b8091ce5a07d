package api

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestAPageTokenTheServerNeverGaveOutIsRefused: a cluster page token is
// the name of the page's last cluster, so anything that is not a cluster
// name is refused instead of listing from wherever it happens to sort.
func TestAPageTokenTheServerNeverGaveOutIsRefused(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	for _, n := range []string{"a", "b", "c"} {
		e.CreateCluster(authority.CreateClusterRequest{Name: n})
	}
	s := New(Config{Authority: e.Authority})
	for _, tok := range []string{"garbage!!", "A", "../b", "a\n"} {
		_, err := s.ListClusters(e.Ctx, &pb.ListClustersRequest{PageToken: tok})
		if !errors.Is(err, authority.ErrInvalid) || codeOf(err) != codes.InvalidArgument {
			t.Errorf("page token %q: %v, want InvalidArgument", tok, err)
		}
	}
	first, err := s.ListClusters(e.Ctx, &pb.ListClustersRequest{PageSize: 1})
	if err != nil || first.GetNextPageToken() != "a" {
		t.Fatalf("first page: next token %q, %v; want \"a\"", first.GetNextPageToken(), err)
	}
	rest, err := s.ListClusters(e.Ctx, &pb.ListClustersRequest{PageToken: first.GetNextPageToken()})
	if err != nil || len(rest.GetClusters()) != 2 || rest.GetClusters()[0].GetName() != "b" {
		t.Fatalf("the page after \"a\": %v, %v; want b and c", rest.GetClusters(), err)
	}
}

// TestATokenPageTokenTheServerNeverGaveOutIsRefused: a token page token
// is the ID of the page's last token; anything else is refused, and never
// echoed, since it may be a pasted secret.
func TestATokenPageTokenTheServerNeverGaveOutIsRefused(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	for range 3 {
		if _, _, err := e.Authority.CreateToken(e.Ctx, authoritytest.Offline, "orders", "taskmanager", 0, 1); err != nil {
			t.Fatal(err)
		}
	}
	s := New(Config{Authority: e.Authority})
	for _, tok := range []string{"garbage!!", "zzzz", "fpk_secret-looking-value"} {
		_, err := s.ListTokens(e.Ctx, &pb.ListTokensRequest{PageToken: tok})
		if !errors.Is(err, authority.ErrInvalid) || codeOf(err) != codes.InvalidArgument {
			t.Errorf("page token %q: %v, want InvalidArgument", tok, err)
		} else if strings.Contains(err.Error(), tok) {
			t.Errorf("page token %q is echoed in %q", tok, err)
		}
	}
	first, err := s.ListTokens(e.Ctx, &pb.ListTokensRequest{PageSize: 1})
	if err != nil || len(first.GetTokens()) != 1 || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, next %q, %v; want one token and a next token", first.GetTokens(), first.GetNextPageToken(), err)
	}
	rest, err := s.ListTokens(e.Ctx, &pb.ListTokensRequest{PageToken: first.GetNextPageToken()})
	if err != nil || len(rest.GetTokens()) != 2 {
		t.Fatalf("the page after the first: %v, %v; want the other two tokens", rest.GetTokens(), err)
	}
}

// TestAnAfterSeqPastTheLargestIsRefused: after_seq is a uint64 on the
// wire, but above MaxAfterSeq "after" would wrap around to the start.
func TestAnAfterSeqPastTheLargestIsRefused(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	s := New(Config{Authority: e.Authority})
	for _, after := range []uint64{MaxAfterSeq + 1, math.MaxUint64} {
		if _, err := s.ListAudit(e.Ctx, &pb.ListAuditRequest{AfterSeq: after}); codeOf(err) != codes.InvalidArgument {
			t.Errorf("list after %d: %v, want InvalidArgument", after, err)
		}
		if _, err := s.VerifyAudit(e.Ctx, &pb.VerifyAuditRequest{AfterSeq: after}); codeOf(err) != codes.InvalidArgument {
			t.Errorf("verify after %d: %v, want InvalidArgument", after, err)
		}
	}
	resp, err := s.ListAudit(e.Ctx, &pb.ListAuditRequest{AfterSeq: MaxAfterSeq})
	if err != nil || len(resp.GetEntries()) != 0 {
		t.Errorf("list after %d: %d entries, %v; want none", uint64(MaxAfterSeq), len(resp.GetEntries()), err)
	}
}

// TestAPageOfClustersEndsBeforeItOutgrowsAClient: a page ends early once
// its clusters would pass the answer's byte bound (a thousand RSA-4096
// clusters in mid-rotation carry about 9 MiB of CA certificates, and gRPC
// clients take 4 MiB), and the next page picks up after its last cluster:
// every cluster is listed once, in order.
func TestAPageOfClustersEndsBeforeItOutgrowsAClient(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	var want []string
	for i := range 12 {
		name := fmt.Sprintf("c%02d", i)
		e.CreateCluster(authority.CreateClusterRequest{Name: name})
		want = append(want, name)
	}
	s := New(Config{Authority: e.Authority})
	one, err := s.ListClusters(e.Ctx, &pb.ListClustersRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.maxAnswerBytes = 3 * (proto.Size(one.GetClusters()[0]) + 8) // room for three
	var got []string
	pages := 0
	for tok := ""; ; {
		page, err := s.ListClusters(e.Ctx, &pb.ListClustersRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if n := len(page.GetClusters()); n > 3 || n == 0 {
			t.Fatalf("page %d holds %d clusters, want 1 to 3 within the bound", pages, n)
		}
		for _, c := range page.GetClusters() {
			got = append(got, c.GetName())
		}
		if tok = page.GetNextPageToken(); tok == "" {
			break
		}
	}
	if !slices.Equal(got, want) || pages < 4 {
		t.Errorf("listed %v in %d pages, want %v in 4 or more (at most 3 a page)", got, pages, want)
	}
}
