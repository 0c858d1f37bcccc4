/*
 * A kevent(2) echo server in the FreeBSD style: one kqueue, EVFILT_READ on the listening
 * socket and on each client, echo what arrives, close a client at EOF.
 *
 * Builds unchanged on FreeBSD, and on Linux against knote-capi:
 *
 *     cargo build -p knote-capi --release
 *     cc examples/c/echo.c -Icapi/include target/release/libknote_capi.a \
 *         -lpthread -ldl -lm -lrt -lutil -lgcc_s -o echo
 *     ./echo 127.0.0.1 7777
 *
 * Usage: echo ADDRESS PORT [CONNECTIONS]
 *   PORT 0 picks a free port; the server prints "listening on ADDRESS:PORT" once bound.
 *   With CONNECTIONS it exits (status 0) after that many clients have come and gone.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/event.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EVENTS 64

static void set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		err(1, "fcntl");
}

/* Writes all of buf to the non-blocking fd, waiting for room on wkq (a kqueue of its own, so
 * the wait collects nothing but this fd's WRITE event). */
static int write_all(int wkq, int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno != EAGAIN)
			return -1;
		struct kevent kev;
		EV_SET(&kev, fd, EVFILT_WRITE, EV_ADD | EV_ONESHOT, 0, 0, NULL);
		if (kevent(wkq, &kev, 1, &kev, 1, NULL) == -1)
			err(1, "kevent (write)");
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s ADDRESS PORT [CONNECTIONS]\n", argv[0]);
		return 2;
	}
	long limit = argc == 4 ? strtol(argv[3], NULL, 10) : -1;

	struct sockaddr_in sin;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1)
		errx(2, "bad address: %s", argv[1]);

	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd == -1)
		err(1, "socket");
	int on = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) == -1)
		err(1, "bind");
	if (listen(lfd, 128) == -1)
		err(1, "listen");
	set_nonblocking(lfd);
	socklen_t slen = sizeof sin;
	if (getsockname(lfd, (struct sockaddr *)&sin, &slen) == -1)
		err(1, "getsockname");
	printf("listening on %s:%d\n", argv[1], ntohs(sin.sin_port));
	fflush(stdout);

	int kq = kqueue(), wkq = kqueue();
	if (kq == -1 || wkq == -1)
		err(1, "kqueue");
	struct kevent kev;
	EV_SET(&kev, lfd, EVFILT_READ, EV_ADD, 0, 0, NULL);
	if (kevent(kq, &kev, 1, NULL, 0, NULL) == -1)
		err(1, "kevent (listen)");

	long finished = 0;
	char buf[4096];
	while (limit < 0 || finished < limit) {
		struct kevent events[MAX_EVENTS];
		int n = kevent(kq, NULL, 0, events, MAX_EVENTS, NULL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err(1, "kevent");
		}
		for (int i = 0; i < n; i++) {
			int fd = (int)events[i].ident;
			if (events[i].flags & EV_ERROR)
				errx(1, "kevent: fd %d: %s", fd, strerror((int)events[i].data));
			if (fd == lfd) {
				/* data: connections waiting; accept them all. */
				for (;;) {
					int cfd = accept(lfd, NULL, NULL);
					if (cfd == -1) {
						if (errno == EAGAIN || errno == ECONNABORTED)
							break;
						err(1, "accept");
					}
					set_nonblocking(cfd);
					EV_SET(&kev, cfd, EVFILT_READ, EV_ADD, 0, 0, NULL);
					if (kevent(kq, &kev, 1, NULL, 0, NULL) == -1)
						err(1, "kevent (client)");
				}
				continue;
			}
			/* A client: data bytes to read (EV_EOF once the peer is done): read until
			 * EAGAIN, or to the end. */
			int closed = 0;
			for (;;) {
				ssize_t got = read(fd, buf, sizeof buf);
				if (got == -1 && errno == EAGAIN)
					break;
				if (got <= 0 || write_all(wkq, fd, buf, (size_t)got) == -1) {
					closed = 1; /* EOF, or an error */
					break;
				}
			}
			if (closed) {
				close(fd); /* closing removes its knotes */
				finished++;
			}
		}
	}
	close(wkq);
	close(kq);
	close(lfd);
	return 0;
}
