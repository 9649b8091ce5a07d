// Package tick runs periodic background work until its context ends: the
// one loop the server's sweepers, schedulers and watchers share.
package tick

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Every calls f with the tick's time once per interval, the first call one
// interval after the start, until ctx ends. A call that runs longer than
// the interval delays the next one; ticks are not queued up. A call that
// panics is recovered and logged on log, as Call does, and the next tick
// comes as usual.
func Every(ctx context.Context, log *slog.Logger, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			Call(log, f, now)
		}
	}
}

// Call calls f(now) and recovers a panic in it, logged with its stack on
// log (the server's logger, in its format and on its output; slog's
// default logger when log is nil). Periodic work that trips a bug
// on some stored record must not end the process: that would stop every
// cluster's enrollments, and a restarted server would meet the same record
// and stop again. Loops use it for a first call made before their first
// tick.
func Call(log *slog.Logger, f func(now time.Time), now time.Time) {
	defer func() {
		if p := recover(); p != nil {
			if log == nil {
				log = slog.Default()
			}
			log.Error("periodic work panicked; it runs again at its next tick",
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
		}
	}()
	f(now)
}
