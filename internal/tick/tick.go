// Package tick runs periodic background work until its context ends: the
// one loop the server's sweepers, schedulers and watchers share.
package tick

import (
	"context"
	"time"
)

// Every calls f with the tick's time once per interval, the first call one
// interval after the start, until ctx ends. A call that runs longer than
// the interval delays the next one; ticks are not queued up.
func Every(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
