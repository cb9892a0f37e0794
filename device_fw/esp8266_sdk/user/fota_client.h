/* FOTA client over the seed-003 TCP protocol (see fota_client.c). */
#ifndef FOTA_CLIENT_H
#define FOTA_CLIENT_H

#include "c_types.h"

/* Starts an update from host (dotted IPv4) and port; false (with a console line) when it cannot start. */
bool fota_start(const char *host, int port);

#endif
