/*
 * nfswriter: an NFSv4 client (libnfs) that holds one file open and
 * appends a numbered record to it every 50 ms, each written and then
 * committed (fsync: COMMIT); "ack N" on stdout means record N is on the
 * server's disk. It exits at the first error: the bench then starts it
 * again against the server the owner key names, as a remount would.
 *
 * Usage: nfswriter SERVER EXPORT PATH FIRST
 *
 * libnfs-dev is not needed: the few functions it calls are declared
 * here as libnfs 4.0 (Debian bookworm's libnfs13) exports them.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct nfs_context;
struct nfsfh;
struct nfs_context *nfs_init_context(void);
int nfs_set_version(struct nfs_context *, int);
void nfs_set_autoreconnect(struct nfs_context *, int);
void nfs_set_timeout(struct nfs_context *, int);
int nfs_mount(struct nfs_context *, const char *, const char *);
int nfs_open(struct nfs_context *, const char *, int, struct nfsfh **);
int nfs_create(struct nfs_context *, const char *, int, int, struct nfsfh **);
int nfs_write(struct nfs_context *, struct nfsfh *, uint64_t, const void *);
int nfs_fsync(struct nfs_context *, struct nfsfh *);
int nfs_lseek(struct nfs_context *, struct nfsfh *, int64_t, int, uint64_t *);
char *nfs_get_error(struct nfs_context *);

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: nfswriter SERVER EXPORT PATH FIRST\n");
		return 2;
	}
	struct nfs_context *n = nfs_init_context();
	if (n == NULL) {
		fprintf(stderr, "nfs_init_context failed\n");
		return 2;
	}
	nfs_set_version(n, 4);
	/* No reconnect to a server that went away, and no call waits for
	 * ever: the bench moves the client to the new server. */
	nfs_set_autoreconnect(n, 0);
	nfs_set_timeout(n, 2000);
	if (nfs_mount(n, argv[1], argv[2])) {
		fprintf(stderr, "mount: %s\n", nfs_get_error(n));
		return 3;
	}
	struct nfsfh *fh;
	/* The file as the last server left it, else a new one: libnfs's
	 * create is exclusive (NFS4ERR_EXIST on a file that exists). */
	if (nfs_open(n, argv[3], O_WRONLY, &fh) && nfs_create(n, argv[3], O_WRONLY | O_CREAT, 0644, &fh)) {
		fprintf(stderr, "open: %s\n", nfs_get_error(n));
		return 3;
	}
	uint64_t off;
	if (nfs_lseek(n, fh, 0, SEEK_END, &off)) {
		fprintf(stderr, "lseek: %s\n", nfs_get_error(n));
		return 3;
	}
	printf("open %llu\n", (unsigned long long)off);
	fflush(stdout);
	for (long i = atol(argv[4]);; i++) {
		char b[32];
		int l = snprintf(b, sizeof b, "%010ld\n", i);
		if (nfs_write(n, fh, (uint64_t)l, b) != l) {
			fprintf(stderr, "write %ld: %s\n", i, nfs_get_error(n));
			return 4;
		}
		if (nfs_fsync(n, fh)) {
			fprintf(stderr, "fsync %ld: %s\n", i, nfs_get_error(n));
			return 4;
		}
		printf("ack %ld\n", i);
		fflush(stdout);
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
