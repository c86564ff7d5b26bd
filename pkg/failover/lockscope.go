package failover

// LockScope is the cluster lock a failover (and its resume) of service
// holds for its whole run: hoctl status reads it to tell a failover under
// way from one that stopped.
func LockScope(service string) string { return "nfs-" + service }
