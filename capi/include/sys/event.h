/*
 * <sys/event.h> for Linux, provided by knote-capi (libknote_capi): FreeBSD's kqueue(2) and
 * kevent(2) interface with FreeBSD 12+'s struct kevent and FreeBSD's numbering, so a program
 * written for FreeBSD builds unchanged. Link with -lknote_capi (pkg-config: knote-kqueue).
 *
 * Supported filters: EVFILT_READ, EVFILT_WRITE, EVFILT_TIMER, EVFILT_USER, EVFILT_SIGNAL,
 * EVFILT_PROC. The other EVFILT_* values are defined for source compatibility; registering
 * one fails with EINVAL. See capi/README.md for what differs from FreeBSD.
 */
#ifndef KNOTE_CAPI_SYS_EVENT_H
#define KNOTE_CAPI_SYS_EVENT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Filters (struct kevent.filter). */
#define EVFILT_READ     (-1)
#define EVFILT_WRITE    (-2)
#define EVFILT_AIO      (-3)  /* not supported: EINVAL */
#define EVFILT_VNODE    (-4)  /* not supported by the epoll shim: EINVAL */
#define EVFILT_PROC     (-5)
#define EVFILT_SIGNAL   (-6)
#define EVFILT_TIMER    (-7)
#define EVFILT_PROCDESC (-8)  /* not supported: EINVAL */
#define EVFILT_FS       (-9)  /* not supported: EINVAL */
#define EVFILT_LIO      (-10) /* not supported: EINVAL */
#define EVFILT_USER     (-11)
#define EVFILT_SENDFILE (-12) /* not supported: EINVAL */
#define EVFILT_EMPTY    (-13) /* not supported: EINVAL */
#define EVFILT_SYSCOUNT 13

/* Actions and flags (struct kevent.flags). */
#define EV_ADD          0x0001 /* add the knote, or modify it */
#define EV_DELETE       0x0002 /* remove the knote */
#define EV_ENABLE       0x0004 /* resume reporting */
#define EV_DISABLE      0x0008 /* suspend reporting */
#define EV_FORCEONESHOT 0x0100 /* not supported */
#define EV_KEEPUDATA    0x0200 /* not supported */
#define EV_ONESHOT      0x0010 /* delete after the first delivery */
#define EV_CLEAR        0x0020 /* reset the state after delivery */
#define EV_RECEIPT      0x0040 /* always return an EV_ERROR entry for the change */
#define EV_DISPATCH     0x0080 /* disable after each delivery */
#define EV_SYSFLAGS     0xF000 /* reserved */
#define EV_DROP         0x1000
#define EV_FLAG1        0x2000 /* filter-specific */
#define EV_FLAG2        0x4000 /* filter-specific */
/* Returned. */
#define EV_EOF          0x8000 /* end of file, or the condition is final */
#define EV_ERROR        0x4000 /* the change failed: data holds the errno (0: a receipt) */

/* EVFILT_USER (fflags). */
#define NOTE_FFNOP      0x00000000 /* leave the stored flags as they are */
#define NOTE_FFAND      0x40000000 /* AND fflags into them */
#define NOTE_FFOR       0x80000000 /* OR fflags into them */
#define NOTE_FFCOPY     0xc0000000 /* copy fflags into them */
#define NOTE_FFCTRLMASK 0xc0000000
#define NOTE_FFLAGSMASK 0x00ffffff
#define NOTE_TRIGGER    0x01000000 /* fire the event */

/* EVFILT_READ, EVFILT_WRITE. */
#define NOTE_LOWAT      0x0001 /* data is the low-water mark */
#define NOTE_FILE_POLL  0x0002 /* not supported */

/* EVFILT_VNODE (defined for source compatibility). */
#define NOTE_DELETE     0x0001
#define NOTE_WRITE      0x0002
#define NOTE_EXTEND     0x0004
#define NOTE_ATTRIB     0x0008
#define NOTE_LINK       0x0010
#define NOTE_RENAME     0x0020
#define NOTE_REVOKE     0x0040
#define NOTE_OPEN       0x0080
#define NOTE_CLOSE      0x0100
#define NOTE_CLOSE_WRITE 0x0200
#define NOTE_READ       0x0400

/* EVFILT_PROC. Only NOTE_EXIT is reported; the others are accepted. */
#define NOTE_EXIT       0x80000000 /* the process exited: data is its wait status */
#define NOTE_FORK       0x40000000
#define NOTE_EXEC       0x20000000
#define NOTE_PCTRLMASK  0xf0000000
#define NOTE_PDATAMASK  0x000fffff
#define NOTE_TRACK      0x00000001
#define NOTE_TRACKERR   0x00000002
#define NOTE_CHILD      0x00000004

/* EVFILT_TIMER: the unit of data (milliseconds when none is given). */
#define NOTE_SECONDS    0x00000001
#define NOTE_MSECONDS   0x00000002
#define NOTE_USECONDS   0x00000004
#define NOTE_NSECONDS   0x00000008
#define NOTE_ABSTIME    0x00000010 /* data is an absolute time (since the Epoch) */

/* kqueuex(2). */
#define KQUEUE_CLOEXEC  0x00000001

/* FreeBSD 12+'s record: 64 bytes on LP64. */
struct kevent {
	uintptr_t	ident;   /* identifier for this event */
	short		filter;  /* filter for event */
	unsigned short	flags;   /* action flags for kqueue */
	unsigned int	fflags;  /* filter flag value */
	int64_t		data;    /* filter data value */
	void		*udata;  /* opaque user data identifier */
	uint64_t	ext[4];  /* extensions */
};

/* Fills the struct kevent at kevp; ext is zeroed. */
#define EV_SET(kevp, a, b, c, d, e, f) do {	\
	struct kevent *kevp_ = (kevp);		\
	kevp_->ident = (a);			\
	kevp_->filter = (b);			\
	kevp_->flags = (c);			\
	kevp_->fflags = (d);			\
	kevp_->data = (e);			\
	kevp_->udata = (f);			\
	kevp_->ext[0] = 0;			\
	kevp_->ext[1] = 0;			\
	kevp_->ext[2] = 0;			\
	kevp_->ext[3] = 0;			\
} while (0)

#ifdef __cplusplus
extern "C" {
#endif

/* A new kqueue (not close-on-exec), or -1 and errno. */
int kqueue(void);
/* kqueue() with flags: O_CLOEXEC (from <fcntl.h>) or 0; anything else is EINVAL. */
int kqueue1(int flags);
/* kqueue() with flags: KQUEUE_CLOEXEC or 0; anything else is EINVAL. */
int kqueuex(unsigned int flags);
/* Applies nchanges changes, then collects up to nevents events, waiting up to timeout (NULL:
 * forever). Returns the number of events, or -1 and errno. */
int kevent(int kq, const struct kevent *changelist, int nchanges,
	   struct kevent *eventlist, int nevents, const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* KNOTE_CAPI_SYS_EVENT_H */
