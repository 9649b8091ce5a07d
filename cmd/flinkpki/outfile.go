// How commands that write a file check it before they start (admin backup
// and audit archive: --out), word a failed write (worded, reworded; admin
// restore too), and hash what they wrote for their -o json result.

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
)

// checkOutFile checks --out before a command that writes a file there does
// anything: a directory is a usage error (example names a file in it), and
// an existing file is refused with exists (what to do instead) unless
// exists is "" (the command replaces it); its folder must exist and take
// files.
func checkOutFile(out, example, exists string) error {
	if isDir(out) {
		return usagef("--out %s is a directory: name the file, for example --out %s", out, filepath.Join(out, example))
	}
	if _, err := os.Lstat(out); err == nil && exists != "" {
		return fmt.Errorf("%s already exists: %s", out, exists)
	}
	dir := filepath.Dir(out)
	if !isDir(dir) {
		return fmt.Errorf("cannot write %s: %s is not an existing directory; create it first", out, dir)
	}
	// A folder that cannot be written (or a full volume) shows now, not
	// after the server has been asked (and has audited the request).
	if err := atomicfile.CheckDir(dir); err != nil {
		return writeFailure(out, "--out", err)
	}
	return nil
}

// worded marks an error whose message already says, in the user's terms,
// what failed (the server's, a check's): writeFailure passes it on as it is.
type worded struct{ err error }

func (w worded) Error() string { return w.err.Error() }
func (w worded) Unwrap() error { return w.err }

// writeFailure words a failure to write path (a file atomicfile writes
// under a temporary name beside it first) against path itself, on one line,
// with what to do: free space, or change flag (the option that chose the
// folder). An error marked worded passes through unchanged.
func writeFailure(path, flag string, err error) error {
	var w worded
	if errors.As(err, &w) {
		return w.err
	}
	reason := atomicfile.Cause(err).Error()
	advice := "choose another " + flag
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		advice = "free space there, or choose another " + flag
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		advice = "choose a folder you can write to with " + flag
	}
	return reworded{fmt.Sprintf("cannot write %s: %s; %s", path, reason, advice), err}
}

// isDir reports whether path names an existing directory.
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// resultHash is the SHA-256 of the bytes a command writes, for its -o json
// result; for the table it is nil and costs nothing.
type resultHash struct{ h hash.Hash }

func newResultHash(out outputFormat) *resultHash {
	if out != "json" {
		return &resultHash{}
	}
	return &resultHash{h: sha256.New()}
}

// tee returns w, writing into the hash as well when there is one.
func (r *resultHash) tee(w io.Writer) io.Writer {
	if r.h == nil {
		return w
	}
	return io.MultiWriter(w, r.h)
}

// hex is the hash in lower-case hex, "" without one.
func (r *resultHash) hex() string {
	if r.h == nil {
		return ""
	}
	return hex.EncodeToString(r.h.Sum(nil))
}

// reworded is err with another message; errors.Is still sees err.
type reworded struct {
	msg string
	err error
}

func (r reworded) Error() string { return r.msg }
func (r reworded) Unwrap() error { return r.err }
