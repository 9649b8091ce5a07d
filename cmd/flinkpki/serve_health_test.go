package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestHealthGoesNotServingWhenTheDatabaseCannotBeWritten: the bbolt
// server's health turns NOT_SERVING when its database file can no longer
// be written, as etcd's does when etcd is lost, so Kubernetes takes the
// pod out of its Service instead of routing init containers to a server
// whose every issuance fails. The failure is the real one: an ext4 volume
// that the kernel turns read-only after an error (errors=remount-ro),
// triggered through /sys/fs/ext4/DEV/trigger_fs_error. That needs root
// and a loop device, as CI has.
func TestHealthGoesNotServingWhenTheDatabaseCannotBeWritten(t *testing.T) {
	vol, dev := ext4Volume(t)
	healthAddr, metricsAddr := freeAddr(t), freeAddr(t)
	s := startServer(t, filepath.Join(vol, "data"), "--health-listen", healthAddr, "--metrics-listen", metricsAddr)
	s.cli(t, s.admin, "cluster", "create", "orders", "--key-type", "ecdsa-p256").ok(t)
	conn, err := grpc.NewClient(healthAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		var last any
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "flinkpki.v1.EnrollmentService"})
			cancel()
			if err == nil && resp.GetStatus() == want {
				return
			}
			last = err
			if err == nil {
				last = resp.GetStatus()
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("health did not become %s within %s; last answer %v\nserver log:\n%s", want, within, last, s.stderr.String())
	}
	waitFor(healthpb.HealthCheckResponse_SERVING, 5*time.Second)
	// Two checks' time: a healthy store must not flap.
	time.Sleep(2*storeHealthEvery + 500*time.Millisecond)
	waitFor(healthpb.HealthCheckResponse_SERVING, time.Second)
	if m := scrapeMetrics(t, metricsAddr); !strings.Contains(m, "\nflinkpki_ready 1\n") {
		t.Errorf("a serving server's metrics lack flinkpki_ready 1")
	}

	if err := os.WriteFile(filepath.Join("/sys/fs/ext4", dev, "trigger_fs_error"), []byte("flinkpki test\n"), 0); err != nil {
		t.Fatalf("trigger an ext4 error on %s: %v", dev, err)
	}
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING, 10*time.Second)
	// Still scraped, it says it is not ready: up{} alone would not.
	if m := scrapeMetrics(t, metricsAddr); !strings.Contains(m, "\nflinkpki_ready 0\n") {
		t.Errorf("a NOT_SERVING server's metrics lack flinkpki_ready 0")
	}
	if log := s.stderr.String(); !strings.Contains(log, "the store failed its health check: health is NOT_SERVING") || !strings.Contains(log, "read-only file system") {
		t.Errorf("the log does not say why health turned NOT_SERVING:\n%s", log)
	}
	// What the health says is what an issuance meets.
	if r := s.cli(t, s.admin, "cluster", "create", "after"); r.code == 0 {
		t.Errorf("a write succeeded on a read-only volume: %+v", r)
	}
}

// ext4Volume mounts a small ext4 image on a loop device with
// errors=remount-ro, for the test, and returns the mount point and the
// device's name under /sys/fs/ext4.
func ext4Volume(t *testing.T) (dir, dev string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("mounting an ext4 image needs root; run the tests as root (CI does) to cover a failing database volume")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Fatal("no loop devices here (/dev/loop-control): run the tests on a machine with loop devices (CI's has them) to cover a failing database volume")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: install e2fsprogs and mount (apt-get install e2fsprogs mount)", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "vol.img")
	if out, err := exec.Command("truncate", "-s", "32M", img).CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v: %s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil && strings.Contains(string(out), "ermission denied") {
		t.Fatalf("losetup is not permitted here (an unprivileged container): %s; run the tests where root may attach loop devices (CI can) to cover a failing database volume", out)
	}
	if err != nil {
		t.Fatalf("losetup (is there a loop device? /dev/loop-control): %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	dir = t.TempDir()
	if out, err := exec.Command("mount", "-o", "errors=remount-ro", loop, dir).CombinedOutput(); err != nil {
		exec.Command("losetup", "-d", loop).Run()
		if strings.Contains(string(out), "ermission denied") {
			t.Fatalf("mount is not permitted here (an unprivileged container): %s", out)
		}
		t.Fatalf("mount %s: %v: %s", loop, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		exec.Command("losetup", "-d", loop).Run()
	})
	return dir, filepath.Base(loop)
}
