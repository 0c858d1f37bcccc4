/*
 * kqueue(2)/kevent(2) through knote-capi's C ABI, written as a FreeBSD program would be.
 *
 * Usage: kevent_test NAME   runs one test; exits 0 and prints "ok NAME" when it passes,
 *                           prints the failed check and exits 1 otherwise.
 *        kevent_test layout prints the struct layout and constants for the Rust side to compare.
 * Every test is bounded: waits have timeouts, and alarm() ends a hung test with SIGALRM.
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The header's layout is FreeBSD 12+'s (LP64). */
_Static_assert(sizeof(struct kevent) == 64, "struct kevent is 64 bytes");
_Static_assert(offsetof(struct kevent, ident) == 0, "ident");
_Static_assert(offsetof(struct kevent, filter) == 8, "filter");
_Static_assert(offsetof(struct kevent, flags) == 10, "flags");
_Static_assert(offsetof(struct kevent, fflags) == 12, "fflags");
_Static_assert(offsetof(struct kevent, data) == 16, "data");
_Static_assert(offsetof(struct kevent, udata) == 24, "udata");
_Static_assert(offsetof(struct kevent, ext) == 32, "ext");

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s (errno %d: %s)\n",  \
			    __FILE__, __LINE__, #cond, errno, strerror(errno));      \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

/* A call that must fail with -1 and this errno. */
#define CHECK_ERR(call, err)                                                         \
	do {                                                                         \
		errno = 0;                                                           \
		int r_ = (call);                                                     \
		if (r_ != -1 || errno != (err)) {                                    \
			fprintf(stderr, "%s:%d: %s returned %d errno %d (%s), "      \
			    "want -1 errno %d (%s)\n", __FILE__, __LINE__, #call,    \
			    r_, errno, strerror(errno), (err), strerror(err));       \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

static const struct timespec zero = {0, 0};
static const struct timespec two_seconds = {2, 0};

static int new_kq(void)
{
	int kq = kqueue();
	CHECK(kq >= 0);
	return kq;
}

/* Applies one change without collecting: EV_RECEIPT, and the receipt's errno is returned. */
static int change(int kq, uintptr_t ident, short filter, unsigned short flags,
    unsigned int fflags, int64_t data, void *udata)
{
	struct kevent kev, out;
	EV_SET(&kev, ident, filter, flags | EV_RECEIPT, fflags, data, udata);
	int n = kevent(kq, &kev, 1, &out, 1, &zero);
	CHECK(n == 1);
	CHECK(out.flags & EV_ERROR);
	CHECK(out.ident == ident && out.filter == filter);
	return (int)out.data;
}

/* Collects events without waiting. */
static int poll_kq(int kq, struct kevent *events, int nevents)
{
	int n = kevent(kq, NULL, 0, events, nevents, &zero);
	CHECK(n >= 0);
	return n;
}

/* Waits up to two seconds for exactly one event. */
static struct kevent wait_one(int kq)
{
	struct kevent ev;
	int n = kevent(kq, NULL, 0, &ev, 1, &two_seconds);
	CHECK(n == 1);
	return ev;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* ---- filters ------------------------------------------------------------------------------ */

static void test_read_write_pipe(void)
{
	int kq = new_kq(), p[2];
	struct kevent ev[4];
	CHECK(pipe(p) == 0);
	CHECK(change(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, (void *)0x11) == 0);
	CHECK(change(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, (void *)0x22) == 0);
	int n = poll_kq(kq, ev, 4);
	CHECK(n == 1 && ev[0].filter == EVFILT_WRITE && ev[0].ident == (uintptr_t)p[1]);
	CHECK(ev[0].udata == (void *)0x22 && ev[0].data > 0);
	CHECK(ev[0].ext[0] == 0 && ev[0].ext[3] == 0);
	CHECK(write(p[1], "hello", 5) == 5);
	CHECK(change(kq, p[1], EVFILT_WRITE, EV_DELETE, 0, 0, NULL) == 0);
	n = poll_kq(kq, ev, 4);
	CHECK(n == 1 && ev[0].filter == EVFILT_READ && ev[0].ident == (uintptr_t)p[0]);
	CHECK(ev[0].data == 5 && ev[0].udata == (void *)0x11 && !(ev[0].flags & EV_EOF));
	close(p[1]);
	n = poll_kq(kq, ev, 4);
	CHECK(n == 1 && (ev[0].flags & EV_EOF) && ev[0].data == 5);
	close(p[0]);
	close(kq);
}

static void test_read_write_socketpair(void)
{
	int kq = new_kq(), s[2];
	struct kevent ch[2], ev[4];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0);
	/* Both changes in one call, collecting at once. */
	EV_SET(&ch[0], s[0], EVFILT_READ, EV_ADD, 0, 0, (void *)1);
	EV_SET(&ch[1], s[0], EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, (void *)2);
	int n = kevent(kq, ch, 2, ev, 4, &zero);
	CHECK(n == 1 && ev[0].filter == EVFILT_WRITE && ev[0].udata == (void *)2);
	CHECK(poll_kq(kq, ev, 4) == 0); /* EV_CLEAR: no new edge */
	CHECK(send(s[1], "abc", 3, 0) == 3);
	struct kevent got = wait_one(kq);
	CHECK(got.filter == EVFILT_READ && got.data == 3 && got.udata == (void *)1);
	char buf[8];
	CHECK(recv(s[0], buf, sizeof buf, 0) == 3);
	CHECK(poll_kq(kq, ev, 4) == 0);
	/* (Linux wakes a socket's writers when the peer shuts down, which the shim reports as a
	 * new WRITE edge; FreeBSD does not. Watch READ alone for the EOF.) */
	CHECK(change(kq, s[0], EVFILT_WRITE, EV_DELETE, 0, 0, NULL) == 0);
	shutdown(s[1], SHUT_WR);
	got = wait_one(kq);
	CHECK(got.filter == EVFILT_READ && (got.flags & EV_EOF) && got.data == 0);
	close(s[0]);
	close(s[1]);
	close(kq);
}

/* A one-shot timer of `amount` in `unit` fires, and not before `min_ns`. */
static void timer_once(int kq, uintptr_t ident, unsigned int unit, int64_t amount, long long min_ns)
{
	long long start = now_ns();
	CHECK(change(kq, ident, EVFILT_TIMER, EV_ADD | EV_ONESHOT, unit, amount, (void *)ident) == 0);
	struct timespec limit = {5, 0};
	struct kevent ev;
	int n = kevent(kq, NULL, 0, &ev, 1, &limit);
	CHECK(n == 1 && ev.filter == EVFILT_TIMER && ev.ident == ident);
	CHECK(ev.data == 1 && ev.udata == (void *)ident);
	CHECK(now_ns() - start >= min_ns);
	/* EV_ONESHOT: the knote is gone. */
	CHECK(change(kq, ident, EVFILT_TIMER, EV_DELETE, 0, 0, NULL) == ENOENT);
}

static void test_timer_units(void)
{
	int kq = new_kq();
	timer_once(kq, 1, 0, 30, 30000000LL);                      /* default: ms */
	timer_once(kq, 2, NOTE_MSECONDS, 30, 30000000LL);
	timer_once(kq, 3, NOTE_USECONDS, 30000, 30000000LL);
	timer_once(kq, 4, NOTE_NSECONDS, 30000000, 30000000LL);
	timer_once(kq, 5, NOTE_SECONDS, 1, 1000000000LL);
	/* NOTE_ABSTIME: a deadline on the realtime clock, here 30 ms from now. */
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	int64_t deadline_us = (int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000 + 30000;
	timer_once(kq, 6, NOTE_USECONDS | NOTE_ABSTIME, deadline_us, 0);
	clock_gettime(CLOCK_REALTIME, &rt);
	CHECK((int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000 >= deadline_us);
	close(kq);
}

static void test_timer_periodic_counts(void)
{
	int kq = new_kq();
	struct kevent ev;
	CHECK(change(kq, 9, EVFILT_TIMER, EV_ADD, NOTE_MSECONDS, 5, NULL) == 0);
	usleep(60000);
	CHECK(poll_kq(kq, &ev, 1) == 1);
	CHECK(ev.ident == 9 && ev.data >= 2); /* missed periods are counted */
	CHECK(change(kq, 9, EVFILT_TIMER, EV_DELETE, 0, 0, NULL) == 0);
	close(kq);
}

static void test_user_trigger_and_fflags(void)
{
	int kq = new_kq();
	struct kevent ev;
	CHECK(change(kq, 7, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_FFCOPY | 0x0f, 0, (void *)7) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 0);
	CHECK(change(kq, 7, EVFILT_USER, 0, NOTE_TRIGGER, 0, (void *)7) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 1);
	CHECK(ev.ident == 7 && ev.filter == EVFILT_USER && ev.udata == (void *)7);
	CHECK((ev.fflags & NOTE_FFLAGSMASK) == 0x0f);
	CHECK(poll_kq(kq, &ev, 1) == 0); /* EV_CLEAR */
	CHECK(change(kq, 7, EVFILT_USER, 0, NOTE_FFOR | 0x30, 0, (void *)7) == 0);
	CHECK(change(kq, 7, EVFILT_USER, 0, NOTE_FFAND | 0x3c, 0, (void *)7) == 0);
	CHECK(change(kq, 7, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFNOP, 0, (void *)7) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 1);
	CHECK((ev.fflags & NOTE_FFLAGSMASK) == 0x3c);
	close(kq);
}

static void test_signal(void)
{
	int kq = new_kq();
	struct kevent ev;
	signal(SIGUSR1, SIG_IGN);
	CHECK(change(kq, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, (void *)5) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 0);
	raise(SIGUSR1);
	raise(SIGUSR1);
	ev = wait_one(kq);
	CHECK(ev.ident == SIGUSR1 && ev.filter == EVFILT_SIGNAL && ev.data == 2);
	CHECK(ev.udata == (void *)5);
	CHECK(poll_kq(kq, &ev, 1) == 0);
	close(kq);
}

static void test_proc_exit(void)
{
	int kq = new_kq(), gate[2];
	CHECK(pipe(gate) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char c;
		close(gate[1]);
		(void)!read(gate[0], &c, 1);
		_exit(7);
	}
	close(gate[0]);
	CHECK(change(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, (void *)9) == 0);
	struct kevent ev;
	CHECK(poll_kq(kq, &ev, 1) == 0);
	close(gate[1]);
	ev = wait_one(kq);
	CHECK(ev.ident == (uintptr_t)pid && ev.filter == EVFILT_PROC);
	CHECK((ev.fflags & NOTE_EXIT) && (ev.flags & EV_EOF) && ev.udata == (void *)9);
	CHECK(WIFEXITED((int)ev.data) && WEXITSTATUS((int)ev.data) == 7);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid && WEXITSTATUS(status) == 7);
	close(kq);
}

/* ---- flags -------------------------------------------------------------------------------- */

static void test_enable_disable_delete(void)
{
	int kq = new_kq();
	struct kevent ev;
	CHECK(change(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL) == 0);
	CHECK(change(kq, 1, EVFILT_USER, EV_DISABLE, NOTE_TRIGGER, 0, NULL) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 0);
	CHECK(change(kq, 1, EVFILT_USER, EV_ENABLE, 0, 0, NULL) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 1 && ev.ident == 1);
	CHECK(poll_kq(kq, &ev, 1) == 1); /* level-triggered without EV_CLEAR */
	CHECK(change(kq, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 0);
	CHECK(change(kq, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL) == ENOENT);
	close(kq);
}

static void test_oneshot_and_dispatch(void)
{
	int kq = new_kq(), p[2];
	struct kevent ev;
	CHECK(pipe(p) == 0);
	CHECK(write(p[1], "x", 1) == 1);
	CHECK(change(kq, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, NULL) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 1 && (ev.flags & EV_ONESHOT));
	CHECK(poll_kq(kq, &ev, 1) == 0);
	CHECK(change(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL) == ENOENT);

	CHECK(change(kq, p[0], EVFILT_READ, EV_ADD | EV_DISPATCH, 0, 0, NULL) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 1 && (ev.flags & EV_DISPATCH));
	CHECK(poll_kq(kq, &ev, 1) == 0); /* disabled after delivery */
	CHECK(change(kq, p[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL) == 0);
	CHECK(poll_kq(kq, &ev, 1) == 1); /* still readable: re-armed */
	CHECK(change(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL) == 0); /* kept, disabled */
	close(p[0]);
	close(p[1]);
	close(kq);
}

static void test_receipt_entries(void)
{
	int kq = new_kq();
	struct kevent ch[3], ev[3];
	/* Knote 1 exists (NOTE_TRIGGER in its creating EV_ADD would be ignored): trigger it. */
	CHECK(change(kq, 1, EVFILT_USER, EV_ADD, 0, 0, (void *)1) == 0);
	EV_SET(&ch[0], 1, EVFILT_USER, EV_RECEIPT, NOTE_TRIGGER, 0, (void *)1);
	EV_SET(&ch[1], 2, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, (void *)2);
	EV_SET(&ch[2], 3, EVFILT_USER, EV_DELETE | EV_RECEIPT, 0, 0, (void *)3);
	ch[1].ext[2] = 0xabcdef;
	ch[1].ext[3] = 42;
	/* Receipts come back at once, even with events pending and no timeout. */
	int n = kevent(kq, ch, 3, ev, 3, NULL);
	CHECK(n == 3);
	for (int i = 0; i < 3; i++) {
		CHECK(ev[i].flags == EV_ERROR && ev[i].ident == (uintptr_t)(i + 1));
		CHECK(ev[i].udata == (void *)(uintptr_t)(i + 1));
	}
	CHECK(ev[0].data == 0 && ev[1].data == 0 && ev[2].data == ENOENT);
	/* An entry is its change written back: ext included. */
	CHECK(ev[1].ext[2] == 0xabcdef && ev[1].ext[3] == 42 && ev[0].ext[2] == 0);
	/* The pending trigger is delivered by the next call, with EV_RECEIPT kept. */
	CHECK(poll_kq(kq, ev, 3) == 1 && ev[0].ident == 1 && (ev[0].flags & EV_RECEIPT));
	close(kq);
}

static void test_same_array_for_changes_and_events(void)
{
	int kq = new_kq();
	struct kevent kev[2];
	CHECK(change(kq, 4, EVFILT_USER, EV_ADD, 0, 0, (void *)4) == 0);
	EV_SET(&kev[0], 4, EVFILT_USER, 0, NOTE_TRIGGER, 0, (void *)4);
	EV_SET(&kev[1], 5, EVFILT_USER, EV_DELETE, 0, 0, (void *)5);
	int n = kevent(kq, kev, 2, kev, 2, &zero);
	CHECK(n == 1 && kev[0].ident == 5 && kev[0].flags == EV_ERROR && kev[0].data == ENOENT);
	n = kevent(kq, kev, 0, kev, 2, &zero);
	CHECK(n == 1 && kev[0].ident == 4 && kev[0].udata == (void *)4);
	close(kq);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_error_entries(void)
{
	int kq = new_kq(), p[2];
	struct kevent ch[3], ev[4];
	CHECK(pipe(p) == 0);
	close(p[1]);
	EV_SET(&ch[0], p[1], EVFILT_READ, EV_ADD, 0, 0, NULL);       /* closed fd */
	EV_SET(&ch[1], 77, EVFILT_TIMER, EV_DELETE, 0, 0, NULL);     /* no such knote */
	EV_SET(&ch[2], p[0], EVFILT_READ, EV_ADD, 0, 0, (void *)3);  /* fine: no entry */
	ch[0].ext[3] = 3;
	int n = kevent(kq, ch, 3, ev, 4, &zero);
	CHECK(n == 2);
	CHECK(ev[0].ident == (uintptr_t)p[1] && ev[0].flags == EV_ERROR && ev[0].data == EBADF);
	CHECK(ev[0].ext[3] == 3);
	CHECK(ev[1].ident == 77 && ev[1].filter == EVFILT_TIMER && ev[1].data == ENOENT);
	/* The third change was applied: p[0] is at EOF. */
	n = poll_kq(kq, ev, 4);
	CHECK(n == 1 && ev[0].ident == (uintptr_t)p[0] && (ev[0].flags & EV_EOF));
	/* Unsupported and unknown filters. */
	CHECK(change(kq, 0, EVFILT_AIO, EV_ADD, 0, 0, NULL) == EINVAL);
	CHECK(change(kq, 0, -100, EV_ADD, 0, 0, NULL) == EINVAL);
	close(p[0]);
	close(kq);
}

static void test_no_room_for_errors(void)
{
	int kq = new_kq();
	struct kevent ch[2];
	EV_SET(&ch[0], 1, EVFILT_USER, EV_DELETE, 0, 0, NULL);
	EV_SET(&ch[1], 2, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(kq, ch, 2, NULL, 0, &zero), ENOENT);
	/* The change after the failed one was not applied. */
	CHECK(change(kq, 2, EVFILT_USER, EV_DELETE, 0, 0, NULL) == ENOENT);
	close(kq);
}

static void test_bad_arguments(void)
{
	int kq = new_kq(), p[2];
	struct kevent ev;
	EV_SET(&ev, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(kq, &ev, -1, &ev, 1, &zero), EINVAL);
	CHECK_ERR(kevent(kq, &ev, 1, &ev, -1, &zero), EINVAL);
	CHECK_ERR(kevent(kq, NULL, 1, &ev, 1, &zero), EFAULT);
	CHECK_ERR(kevent(kq, &ev, 0, NULL, 1, &zero), EFAULT);
	struct timespec bad[] = {{0, 1000000000L}, {0, -1}, {-1, 0}};
	for (int i = 0; i < 3; i++)
		CHECK_ERR(kevent(kq, NULL, 0, &ev, 1, &bad[i]), EINVAL);
	/* No change of a refused call was applied. */
	CHECK(poll_kq(kq, &ev, 1) == 0);
	CHECK(change(kq, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL) == ENOENT);
	/* Not kqueues. */
	CHECK(pipe(p) == 0);
	CHECK_ERR(kevent(-1, NULL, 0, NULL, 0, &zero), EBADF);
	CHECK_ERR(kevent(p[0], NULL, 0, NULL, 0, &zero), EBADF);
	CHECK_ERR(kevent(0, NULL, 0, NULL, 0, &zero), EBADF);
	CHECK_ERR(kevent(100000, NULL, 0, NULL, 0, &zero), EBADF);
	/* An epoll fd the library did not make is not a kqueue either. */
	int ep = epoll_create1(0);
	CHECK_ERR(kevent(ep, NULL, 0, NULL, 0, &zero), EBADF);
	close(ep);
	/* Empty calls. */
	CHECK(kevent(kq, NULL, 0, NULL, 0, NULL) == 0);
	CHECK(kevent(kq, NULL, 0, NULL, 0, &zero) == 0);
	close(p[0]);
	close(p[1]);
	close(kq);
}

static void on_usr2(int sig)
{
	(void)sig;
}

static volatile int interrupted;
static pthread_t main_thread;

/* Signals the main thread until its wait has been interrupted (so a signal that lands before
 * the wait begins is simply repeated). */
static void *interrupter(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200 && !interrupted; i++) {
		usleep(20000);
		pthread_kill(main_thread, SIGUSR2);
	}
	return NULL;
}

static void test_eintr(void)
{
	int kq = new_kq();
	struct kevent ev;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2; /* no SA_RESTART */
	CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
	main_thread = pthread_self();
	pthread_t t;
	CHECK(pthread_create(&t, NULL, interrupter, NULL) == 0);
	/* The change is applied, then the wait (forever) is interrupted. */
	EV_SET(&ev, 3, EVFILT_USER, EV_ADD, 0, 0, NULL);
	CHECK_ERR(kevent(kq, &ev, 1, &ev, 1, NULL), EINTR);
	interrupted = 1;
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(change(kq, 3, EVFILT_USER, EV_DELETE, 0, 0, NULL) == 0);
	close(kq);
}

static void test_timeout_expires(void)
{
	int kq = new_kq();
	struct kevent ev;
	struct timespec t = {0, 20000000};
	long long start = now_ns();
	CHECK(kevent(kq, NULL, 0, &ev, 1, &t) == 0);
	CHECK(now_ns() - start >= 20000000LL);
	close(kq);
}

/* ---- the kqueue fd ------------------------------------------------------------------------ */

static void test_closed_kqueue_number_reused_by_a_pipe(void)
{
	int kq = new_kq();
	/* Created, then triggered: FreeBSD ignores NOTE_TRIGGER in the creating EV_ADD. */
	CHECK(change(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL) == 0);
	CHECK(change(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL) == 0);
	CHECK(close(kq) == 0);
	int p[2];
	CHECK(pipe(p) == 0);
	/* The lowest free number: the pipe's read end took the kqueue's. */
	CHECK(p[0] == kq);
	CHECK_ERR(kevent(kq, NULL, 0, NULL, 0, &zero), EBADF);
	struct kevent ev;
	CHECK_ERR(kevent(kq, NULL, 0, &ev, 1, &zero), EBADF);
	/* The pipe is untouched and works. */
	CHECK(write(p[1], "ok", 2) == 2);
	char buf[4];
	CHECK(read(p[0], buf, sizeof buf) == 2 && memcmp(buf, "ok", 2) == 0);
	CHECK(fcntl(p[0], F_GETFD) >= 0);
	/* A closed number that nothing reuses is EBADF too. */
	int kq2 = new_kq();
	CHECK(close(kq2) == 0);
	CHECK_ERR(kevent(kq2, NULL, 0, NULL, 0, &zero), EBADF);
	close(p[0]);
	close(p[1]);
}

static void test_closed_kqueue_number_reused_by_a_kqueue(void)
{
	int kq = new_kq();
	/* Created, then triggered: FreeBSD ignores NOTE_TRIGGER in the creating EV_ADD. */
	CHECK(change(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL) == 0);
	CHECK(change(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL) == 0);
	CHECK(close(kq) == 0);
	int again = new_kq();
	CHECK(again == kq);
	/* The new kqueue at the old number is empty. */
	struct kevent ev;
	CHECK(poll_kq(again, &ev, 1) == 0);
	CHECK(change(again, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL) == ENOENT);
	close(again);
}

static void test_close_cycles_leak_no_fds(void)
{
	/* Warm up (a first kqueue may create process-wide state), and reap it. */
	int warm = new_kq();
	close(warm);
	CHECK_ERR(kevent(warm, NULL, 0, NULL, 0, &zero), EBADF);
	int before = open_fds();
	for (int i = 0; i < 200; i++) {
		int kq = new_kq();
		CHECK(change(kq, 1, EVFILT_TIMER, EV_ADD, NOTE_MSECONDS, 1000, NULL) == 0);
		CHECK(change(kq, 2, EVFILT_USER, EV_ADD, 0, 0, NULL) == 0);
		CHECK(close(kq) == 0);
	}
	/* The last cycle's kqueue is reaped at the next creation, or the next use of its number. */
	int last = new_kq();
	close(last);
	CHECK_ERR(kevent(last, NULL, 0, NULL, 0, &zero), EBADF);
	CHECK(open_fds() == before);
}

static void test_fork_child_does_not_inherit(void)
{
	int kq = new_kq();
	/* Created, then triggered: FreeBSD ignores NOTE_TRIGGER in the creating EV_ADD. */
	CHECK(change(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL) == 0);
	CHECK(change(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		errno = 0;
		int r = kevent(kq, NULL, 0, NULL, 0, &zero);
		_exit(r == -1 && errno == EBADF ? 0 : 1);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The parent's kqueue is untouched by the child. */
	struct kevent ev;
	CHECK(poll_kq(kq, &ev, 1) == 1 && ev.ident == 1);
	close(kq);
}

static void test_kqueue1_and_kqueuex(void)
{
	int a = kqueue(), b = kqueue1(O_CLOEXEC), c = kqueuex(KQUEUE_CLOEXEC), d = kqueuex(0);
	CHECK(a >= 0 && b >= 0 && c >= 0 && d >= 0);
	CHECK((fcntl(a, F_GETFD) & FD_CLOEXEC) == 0);
	CHECK((fcntl(b, F_GETFD) & FD_CLOEXEC) != 0);
	CHECK((fcntl(c, F_GETFD) & FD_CLOEXEC) != 0);
	CHECK((fcntl(d, F_GETFD) & FD_CLOEXEC) == 0);
	CHECK_ERR(kqueue1(O_NONBLOCK), EINVAL);
	CHECK_ERR(kqueuex(2), EINVAL);
	struct kevent ev;
	CHECK(poll_kq(b, &ev, 1) == 0 && poll_kq(c, &ev, 1) == 0);
	close(a);
	close(b);
	close(c);
	close(d);
}

static void test_kqueue_fd_is_pollable(void)
{
	int kq = new_kq();
	struct pollfd pfd = {kq, POLLIN, 0};
	CHECK(poll(&pfd, 1, 0) == 0);
	CHECK(change(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL) == 0);
	CHECK(change(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL) == 0);
	CHECK(poll(&pfd, 1, 2000) == 1 && (pfd.revents & POLLIN));
	struct kevent ev;
	CHECK(poll_kq(kq, &ev, 1) == 1);
	close(kq);
}

/* ---- threads ------------------------------------------------------------------------------ */

#define WAITERS 4
#define EVENTS 200
#define STOP 1000 /* idents above are stop events, one per waiter */

static int shared_kq;
static int seen[EVENTS + 1];
static int stops;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void *waiter(void *arg)
{
	(void)arg;
	for (;;) {
		struct kevent ev;
		/* One event per call, waiting forever: the main thread's calls get through meanwhile. */
		int n = kevent(shared_kq, NULL, 0, &ev, 1, NULL);
		CHECK(n == 1 && ev.filter == EVFILT_USER);
		pthread_mutex_lock(&seen_lock);
		int stop = ev.ident > STOP;
		if (stop)
			stops++;
		else if (ev.ident <= EVENTS)
			seen[ev.ident]++;
		pthread_mutex_unlock(&seen_lock);
		CHECK(stop || ev.ident <= EVENTS);
		if (stop)
			return NULL;
	}
}

static int taken(void)
{
	pthread_mutex_lock(&seen_lock);
	int n = 0;
	for (int id = 1; id <= EVENTS; id++)
		n += seen[id];
	pthread_mutex_unlock(&seen_lock);
	return n;
}

static void test_threads_share_a_kqueue(void)
{
	shared_kq = new_kq();
	pthread_t t[WAITERS];
	for (int i = 0; i < WAITERS; i++)
		CHECK(pthread_create(&t[i], NULL, waiter, NULL) == 0);
	usleep(20000); /* most likely all blocked now; the test holds either way */
	for (uintptr_t id = 1; id <= EVENTS; id++) {
		/* Created, then triggered by the next change of the same list. */
		struct kevent kev[2];
		EV_SET(&kev[0], id, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, NULL);
		EV_SET(&kev[1], id, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
		CHECK(kevent(shared_kq, kev, 2, NULL, 0, &zero) == 0);
	}
	for (int spins = 0; taken() < EVENTS; spins++) {
		CHECK(spins < 5000);
		usleep(1000);
	}
	/* One one-shot stop event per waiter: a waiter takes one and leaves. */
	for (uintptr_t i = 1; i <= WAITERS; i++) {
		/* Created, then triggered by the next change of the same list. */
		struct kevent kev[2];
		EV_SET(&kev[0], STOP + i, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, NULL);
		EV_SET(&kev[1], STOP + i, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
		CHECK(kevent(shared_kq, kev, 2, NULL, 0, &zero) == 0);
	}
	for (int i = 0; i < WAITERS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	for (int id = 1; id <= EVENTS; id++)
		CHECK(seen[id] == 1); /* each one-shot event delivered exactly once */
	CHECK(stops == WAITERS);
	struct kevent ev;
	CHECK(poll_kq(shared_kq, &ev, 1) == 0);
	close(shared_kq);
}

/* ---- layout ------------------------------------------------------------------------------- */

static void print_layout(void)
{
	printf("sizeof %zu\n", sizeof(struct kevent));
	printf("ident %zu\nfilter %zu\nflags %zu\nfflags %zu\ndata %zu\nudata %zu\next %zu\n",
	    offsetof(struct kevent, ident), offsetof(struct kevent, filter),
	    offsetof(struct kevent, flags), offsetof(struct kevent, fflags),
	    offsetof(struct kevent, data), offsetof(struct kevent, udata),
	    offsetof(struct kevent, ext));
#define P(name) printf(#name " %lld\n", (long long)(name))
	P(EVFILT_READ); P(EVFILT_WRITE); P(EVFILT_VNODE); P(EVFILT_PROC); P(EVFILT_SIGNAL);
	P(EVFILT_TIMER); P(EVFILT_USER);
	P(EV_ADD); P(EV_DELETE); P(EV_ENABLE); P(EV_DISABLE); P(EV_ONESHOT); P(EV_CLEAR);
	P(EV_RECEIPT); P(EV_DISPATCH); P(EV_EOF); P(EV_ERROR);
	P(NOTE_TRIGGER); P(NOTE_FFNOP); P(NOTE_FFAND); P(NOTE_FFOR); P(NOTE_FFCOPY);
	P(NOTE_FFCTRLMASK); P(NOTE_FFLAGSMASK); P(NOTE_LOWAT); P(NOTE_EXIT); P(NOTE_FORK);
	P(NOTE_EXEC); P(NOTE_SECONDS); P(NOTE_MSECONDS); P(NOTE_USECONDS); P(NOTE_NSECONDS);
	P(NOTE_ABSTIME); P(NOTE_DELETE); P(NOTE_WRITE); P(NOTE_EXTEND); P(NOTE_ATTRIB);
	P(NOTE_LINK); P(NOTE_RENAME); P(NOTE_REVOKE); P(KQUEUE_CLOEXEC);
#undef P
}

static const struct {
	const char *name;
	void (*run)(void);
} tests[] = {
	{"read_write_pipe", test_read_write_pipe},
	{"read_write_socketpair", test_read_write_socketpair},
	{"timer_units", test_timer_units},
	{"timer_periodic_counts", test_timer_periodic_counts},
	{"user_trigger_and_fflags", test_user_trigger_and_fflags},
	{"signal", test_signal},
	{"proc_exit", test_proc_exit},
	{"enable_disable_delete", test_enable_disable_delete},
	{"oneshot_and_dispatch", test_oneshot_and_dispatch},
	{"receipt_entries", test_receipt_entries},
	{"same_array_for_changes_and_events", test_same_array_for_changes_and_events},
	{"error_entries", test_error_entries},
	{"no_room_for_errors", test_no_room_for_errors},
	{"bad_arguments", test_bad_arguments},
	{"eintr", test_eintr},
	{"timeout_expires", test_timeout_expires},
	{"closed_kqueue_number_reused_by_a_pipe", test_closed_kqueue_number_reused_by_a_pipe},
	{"closed_kqueue_number_reused_by_a_kqueue", test_closed_kqueue_number_reused_by_a_kqueue},
	{"close_cycles_leak_no_fds", test_close_cycles_leak_no_fds},
	{"fork_child_does_not_inherit", test_fork_child_does_not_inherit},
	{"kqueue1_and_kqueuex", test_kqueue1_and_kqueuex},
	{"kqueue_fd_is_pollable", test_kqueue_fd_is_pollable},
	{"threads_share_a_kqueue", test_threads_share_a_kqueue},
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s NAME | layout | list\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "layout") == 0) {
		print_layout();
		return 0;
	}
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		if (strcmp(argv[1], "list") == 0) {
			printf("%s\n", tests[i].name);
		} else if (strcmp(argv[1], tests[i].name) == 0) {
			alarm(20); /* a hung test dies of SIGALRM instead of hanging the suite */
			tests[i].run();
			printf("ok %s\n", tests[i].name);
			return 0;
		}
	}
	if (strcmp(argv[1], "list") == 0)
		return 0;
	fprintf(stderr, "no test named %s\n", argv[1]);
	return 2;
}
