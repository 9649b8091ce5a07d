package atomicfile

import (
	"os"
	"syscall"
)

// CloseToOthers takes the write permission of group and others off an
// existing dir of this process's user, before anything is written into
// it: whoever may write there could put files of their own in place of
// the ones written (a keystore, a truststore, a Flink configuration).
// Reading stays as it was (a sidecar of another user may read
// certificates). A directory with the sticky bit keeps others from
// replacing names already; one of another owner, such as a Kubernetes
// emptyDir (root's, mode 0777, which only the pod's containers reach), and
// a dir that is a symbolic link are left as they are. The directory is
// opened without following links and changed through that descriptor, so
// a link swapped in meanwhile cannot make it change another file. It is
// best effort: a file system that refuses (CIFS, some FUSE mounts) keeps
// the mode it had. It reports whether it changed the mode.
func CloseToOthers(dir string) bool {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false
	}
	mode := st.Mode()
	owner, ok := st.Sys().(*syscall.Stat_t)
	if mode&0o022 == 0 || mode&os.ModeSticky != 0 || !ok || int(owner.Uid) != os.Geteuid() {
		return false
	}
	return f.Chmod(mode&(os.ModePerm|os.ModeSetgid)&^0o022) == nil
}
