package etcd

// BackupTxBytes is backupTxBytes, for tests that check the bound.
const BackupTxBytes = backupTxBytes
