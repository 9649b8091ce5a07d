package authority_test

import (
	"testing"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestAutomaticRotationKeepsEveryPairTalkingForThreeYearsOnEtcd runs the
// same three simulated years on a real three-member etcd cluster, as the
// HA issue asks: the schedule and the safety rules do not depend on the
// store.
func TestAutomaticRotationKeepsEveryPairTalkingForThreeYearsOnEtcd(t *testing.T) {
	c := etcdtest.New(t, 3)
	simulateThreeYears(t, onEtcd(c, etcd.Config{Prefix: "/sim/"}))
}
