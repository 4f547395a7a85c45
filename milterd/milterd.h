/*
 * milterd.h - the milter front end: one session per MTA connection.
 */
#ifndef SL_MILTERD_H
#define SL_MILTERD_H

#include <sys/socket.h>

#include <stdbool.h>

struct sl_loop;

/* Serves the MTA connection fd (accepted on loop l's thread). */
void milterd_session_start(struct sl_loop *l, int fd, const struct sockaddr *sa,
    socklen_t salen);
/* SIGTERM: idle sessions close now, busy ones after their message. */
void milterd_sessions_drain(struct sl_loop *l, bool deadline);

#endif
