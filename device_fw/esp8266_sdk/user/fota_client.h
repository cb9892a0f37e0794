/* FOTA client over the seed-003 TCP protocol (see fota_client.c). */
#ifndef FOTA_CLIENT_H
#define FOTA_CLIENT_H

#include "c_types.h"

/* Starts an update from host (dotted IPv4) and port; false (with a console line) when it cannot start. */
bool fota_start(const char *host, int port);
/* At start-up: boot parameters left naming a bin boot_v1.x fell back from are set back to the running bin (one more
 * restart: true then, and nothing else should be started). */
bool fota_repair_boot_params(void);

#endif
