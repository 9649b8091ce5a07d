//go:build flinke2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// probeCleartext speaks plain bytes to a Flink port and classifies the
// answer. A TLS server answers a non-TLS record with a TLS alert record
// (content type 0x15) or closes the connection; a cleartext Netty or Pekko
// endpoint would keep the connection open or answer in its own framing.
func probeCleartext(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", fmt.Errorf("connect %s: %w", addr, err)
	}
	defer c.Close()
	// A Flink netty frame header (length, magic 0xBADC0FFE, id) followed by junk.
	_, _ = c.Write([]byte{0, 0, 0, 16, 0xBA, 0xDC, 0x0F, 0xFE, 0, 0, 0, 0, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', '\r', '\n', '\r', '\n'})
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	switch {
	case n > 0 && buf[0] == 0x15:
		return fmt.Sprintf("TLS alert record % x", buf[:min(n, 7)]), nil
	case n > 0:
		return "", fmt.Errorf("%s answered cleartext bytes % x", addr, buf[:n])
	case errors.Is(err, io.EOF) || isReset(err):
		return "connection closed without a cleartext answer", nil
	default:
		return "", fmt.Errorf("%s neither alerted nor closed on cleartext: %v", addr, err)
	}
}

// probeRESTCleartext sends a plain HTTP request to the REST port. Flink's
// REST endpoint with SSL on (RedirectingSslHandler) answers cleartext HTTP
// only with a redirect to https://; anything else in cleartext, above all a
// 200 with data, means REST is served without TLS.
func probeRESTCleartext(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", fmt.Errorf("connect %s: %w", addr, err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /overview HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	answer := string(b)
	switch {
	case len(b) > 0 && b[0] == 0x15:
		return fmt.Sprintf("TLS alert record % x", b[:min(len(b), 7)]), nil
	case len(b) == 0 && (err == nil || isReset(err)):
		return "connection closed without a cleartext answer", nil
	case strings.HasPrefix(answer, "HTTP/1.1 30") && strings.Contains(strings.ToLower(answer), "location: https://") &&
		!strings.Contains(answer, "taskmanagers"):
		status, _, _ := strings.Cut(answer, "\r\n")
		return "cleartext HTTP only redirected to https (" + status + ")", nil
	default:
		return "", fmt.Errorf("%s served cleartext HTTP: %q", addr, answer[:min(len(answer), 200)])
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// handshake is handshakeVersion up to TLS 1.3.
func handshake(addr string, cert *tls.Certificate, roots *x509.CertPool) error {
	_, err := handshakeVersion(addr, cert, roots, tls.VersionTLS13)
	return err
}

// handshakeVersion completes a TLS handshake with cert (verifying the
// server against roots, not its name) offering TLS 1.2 up to maxVersion,
// and returns the version agreed. In TLS 1.3 a refused client certificate
// shows only on the first read, so it reads once: a timeout means the
// server kept the connection, anything else that it refused it.
func handshakeVersion(addr string, cert *tls.Certificate, roots *x509.CertPool, maxVersion uint16) (uint16, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         maxVersion,
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	v := c.ConnectionState().Version
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return v, nil
	}
	return v, err
}
