/*
 * mpi_ring: pass checked messages around a ring of ranks, then report which
 * TCP connections this process holds, so a test can tell which network the
 * MPI traffic used.
 *
 * One line per rank on stdout:
 *   mpi_ring rank=R size=N host=H rdma=A status=ok|BAD tcp=L->R,L->R,...
 * rdma is this host's 172.16.0.0/16 address ("none" if it has none); tcp
 * lists the established TCP connections of this process, read from
 * /proc/self/net/tcp for the socket inodes in /proc/self/fd.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <mpi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MSG_INTS (256 * 1024)	/* 1 MiB messages */
#define ROUNDS 10
#define MAX_SOCKS 256

static void rdma_address(char *buf, size_t len)
{
	struct ifaddrs *ifs, *i;

	snprintf(buf, len, "none");
	if (getifaddrs(&ifs) != 0)
		return;
	for (i = ifs; i; i = i->ifa_next) {
		struct sockaddr_in *sin = (struct sockaddr_in *)i->ifa_addr;

		if (!sin || sin->sin_family != AF_INET)
			continue;
		/* 172.16.0.0/16 */
		if ((ntohl(sin->sin_addr.s_addr) >> 16) == ((172u << 8) | 16u)) {
			snprintf(buf, len, "%s", inet_ntoa(sin->sin_addr));
			break;
		}
	}
	freeifaddrs(ifs);
}

/* Socket inodes of this process's open fds. */
static int socket_inodes(unsigned long *inodes, int max)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *d;
	int n = 0;

	if (!dir)
		return 0;
	while ((d = readdir(dir)) && n < max) {
		char path[300], target[64];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (sscanf(target, "socket:[%lu]", &inodes[n]) == 1)
			n++;
	}
	closedir(dir);
	return n;
}

static void format_addr(char *buf, size_t len, unsigned addr, unsigned port)
{
	struct in_addr in = { .s_addr = addr };	/* /proc gives network order */

	snprintf(buf, len, "%s:%u", inet_ntoa(in), port);
}

/* Append "local->remote" of each established connection we own to out. */
static void tcp_connections(char *out, size_t len)
{
	unsigned long inodes[MAX_SOCKS];
	int n = socket_inodes(inodes, MAX_SOCKS);
	FILE *f = fopen("/proc/self/net/tcp", "r");
	char line[512];

	out[0] = '\0';
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f)) {	/* header */
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned laddr, lport, raddr, rport, state;
		unsigned long inode;
		char l[32], r[32];
		int i;

		if (sscanf(line, "%*d: %x:%x %x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
			   &laddr, &lport, &raddr, &rport, &state, &inode) != 6)
			continue;
		if (state != 1)	/* TCP_ESTABLISHED */
			continue;
		for (i = 0; i < n && inodes[i] != inode; i++)
			;
		if (i == n)
			continue;
		format_addr(l, sizeof(l), laddr, lport);
		format_addr(r, sizeof(r), raddr, rport);
		snprintf(out + strlen(out), len - strlen(out), "%s%s->%s",
			 out[0] ? "," : "", l, r);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	int rank, size, round, i, bad = 0;
	int *sendbuf, *recvbuf;
	char host[256], rdma[64], tcp[4096];

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	gethostname(host, sizeof(host));
	rdma_address(rdma, sizeof(rdma));

	sendbuf = malloc(MSG_INTS * sizeof(int));
	recvbuf = malloc(MSG_INTS * sizeof(int));
	for (round = 0; round < ROUNDS; round++) {
		int next = (rank + 1) % size, prev = (rank + size - 1) % size;

		for (i = 0; i < MSG_INTS; i++)
			sendbuf[i] = rank * 1000003 + round * 7919 + i;
		MPI_Sendrecv(sendbuf, MSG_INTS, MPI_INT, next, round,
			     recvbuf, MSG_INTS, MPI_INT, prev, round,
			     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		for (i = 0; i < MSG_INTS; i++)
			if (recvbuf[i] != prev * 1000003 + round * 7919 + i) {
				bad++;
				break;
			}
	}
	MPI_Barrier(MPI_COMM_WORLD);
	tcp_connections(tcp, sizeof(tcp));
	printf("mpi_ring rank=%d size=%d host=%s rdma=%s status=%s tcp=%s\n",
	       rank, size, host, rdma, bad ? "BAD" : "ok", tcp);
	fflush(stdout);
	MPI_Barrier(MPI_COMM_WORLD);
	free(sendbuf);
	free(recvbuf);
	MPI_Finalize();
	return bad ? 1 : 0;
}
