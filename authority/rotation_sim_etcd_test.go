package authority_test

import (
	"context"
	"testing"

	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestAutomaticRotationKeepsEveryPairTalkingForThreeYearsOnEtcd runs the
// same three simulated years on a real three-member etcd cluster, as the
// HA issue asks: the schedule and the safety rules do not depend on the
// store.
func TestAutomaticRotationKeepsEveryPairTalkingForThreeYearsOnEtcd(t *testing.T) {
	c := etcdtest.New(t, 3)
	simulateThreeYears(t, authoritytest.WithBackend(func(ctx context.Context) (store.Backend, error) {
		return etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/sim/"})
	}))
}
