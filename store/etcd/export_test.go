package etcd

import "context"

// LoseSession revokes the leader's current lease, as an etcd outage
// longer than the TTL would.
func (l *Leader) LoseSession(ctx context.Context) error {
	l.mu.Lock()
	sess := l.sess
	l.mu.Unlock()
	if sess == nil {
		return nil
	}
	_, err := l.b.cli.Revoke(ctx, sess.Lease())
	return err
}
