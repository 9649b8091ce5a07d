package atomicfile

import (
	"fmt"
	"os"
	"syscall"
)

// CloseToOthers takes the write permission of group and others off an
// existing dir of this process's user: whoever may write there could put
// files of their own in place of the ones written into it (a keystore, a
// truststore, a Flink configuration). Reading stays as it was (a sidecar
// of another user may read certificates). A directory with the sticky bit
// keeps others from replacing names already; one of another owner, such
// as a Kubernetes emptyDir (root's, mode 0777, which only the pod's
// containers reach), is left as it is.
func CloseToOthers(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return Cause(err)
	}
	mode := st.Mode()
	owner, ok := st.Sys().(*syscall.Stat_t)
	if mode&0o022 == 0 || mode&os.ModeSticky != 0 || !ok || int(owner.Uid) != os.Geteuid() {
		return nil
	}
	if err := os.Chmod(dir, mode&(os.ModePerm|os.ModeSetgid)&^0o022); err != nil {
		return fmt.Errorf("cannot take the write permission of group and others off it: %w", Cause(err))
	}
	return nil
}
