#include "daemon/core.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <string.h>

void chassis_init(struct chassis *ch, struct event_base *base)
{
	memset(ch, 0, sizeof(*ch));
	ch->base = base;
	TAILQ_INIT(&ch->by_activity);
}

void chassis_cleanup(struct chassis *ch)
{
	if (ch->idle_sweep != NULL)
		event_free(ch->idle_sweep);
	ch->idle_sweep = NULL;
	if (ch->dns != NULL)
		evdns_base_free(ch->dns, 1);
	ch->dns = NULL;
}

static void chassis_check_stopped(struct chassis *ch)
{
	if (ch->stopping && ch->holds == 0 && ch->stopped != NULL) {
		void (*stopped)(void *arg) = ch->stopped;

		ch->stopped = NULL;
		stopped(ch->stopped_arg);
	}
}

void chassis_stop(struct chassis *ch, void (*stopped)(void *arg), void *arg)
{
	ch->stopping = true;
	ch->stopped = stopped;
	ch->stopped_arg = arg;
	chassis_check_stopped(ch);
}

void chassis_hold(struct chassis *ch)
{
	ch->holds++;
}

void chassis_release(struct chassis *ch)
{
	if (ch->holds > 0)
		ch->holds--;
	chassis_check_stopped(ch);
}

