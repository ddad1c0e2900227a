/*-------------------------------------------------------------------------
 *
 * src/common/cron_expr.c
 *
 * Cron expressions as pg_cron 1.4 accepts them: five fields (minute, hour,
 * day of month, month, day of week) of numbers, names (jan-dec, sun-sat),
 * ranges, steps and lists, or one of @yearly, @annually, @monthly, @weekly,
 * @daily, @midnight, @hourly. pg_pipeline parses them itself so that a bad
 * schedule is refused when it is given (not when pg_cron first fails to run
 * it), and to compute the next time a schedule fires, in UTC as pg_cron
 * does, for pipeline.status.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pipeline/common.h"

PIPELINE_FUNCTION(pipeline_next_run_time);

typedef struct CronFieldSpec
{
	const char *name;
	int			min;
	int			max;
	const char *const *names;	/* names[i] is value min + i, or NULL */
} CronFieldSpec;

static const char *const MonthNames[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const DayNames[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const CronFieldSpec Fields[5] = {
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day of month", 1, 31, NULL},
	{"month", 1, 12, MonthNames},
	{"day of week", 0, 7, DayNames},
};

/* CronError raises the 22023 of an unusable schedule */
static void
CronError(const char *schedule, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid schedule \"%s\"", schedule),
			 errdetail("%s", detail),
			 errhint("Use five cron fields, such as '*/15 * * * *', or @hourly, @daily, @weekly, @monthly, @yearly.")));
}

/* ParseValue reads a number or a name of the field; returns -1 if neither */
static int
ParseValue(const char **p, const CronFieldSpec *spec)
{
	const char *s = *p;
	int			v = 0;

	if (isdigit((unsigned char) *s))
	{
		while (isdigit((unsigned char) *s))
		{
			v = v * 10 + (*s - '0');
			if (v > 1000)
				return -1;
			s++;
		}
		*p = s;
		return v;
	}
	if (spec->names)
	{
		for (int i = 0; spec->names[i]; i++)
		{
			if (pg_strncasecmp(s, spec->names[i], 3) == 0)
			{
				*p = s + 3;
				return spec->min + i;
			}
		}
	}
	return -1;
}

/*
 * ParseField sets bits[v] for every value a field allows. A field is a list
 * of items; an item is *, a value or a range, optionally with /step.
 */
static void
ParseField(const char *schedule, const char *field, const CronFieldSpec *spec, bool *bits)
{
	const char *p = field;

	for (;;)
	{
		int			lo;
		int			hi;
		int			step = 1;

		if (*p == '*')
		{
			lo = spec->min;
			hi = spec->max;
			p++;
		}
		else
		{
			lo = ParseValue(&p, spec);
			if (lo < 0)
				CronError(schedule, psprintf("The %s field \"%s\" is not understood.", spec->name, field));
			hi = lo;
			if (*p == '-')
			{
				p++;
				hi = ParseValue(&p, spec);
				if (hi < 0)
					CronError(schedule, psprintf("The %s field \"%s\" has a bad range.", spec->name, field));
			}
		}
		if (*p == '/')
		{
			p++;
			step = ParseValue(&p, &(CronFieldSpec) {spec->name, 1, 1000, NULL});
			if (step <= 0)
				CronError(schedule, psprintf("The %s field \"%s\" has a bad step.", spec->name, field));
			if (lo == hi && field[0] != '*')
				hi = spec->max;	/* "5/10" means from 5 on, every 10 */
		}
		if (lo < spec->min || hi > spec->max || lo > hi)
			CronError(schedule, psprintf("The %s field allows %d to %d; \"%s\" is out of range.",
										 spec->name, spec->min, spec->max, field));
		for (int v = lo; v <= hi; v += step)
			bits[v] = true;
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p != '\0')
			CronError(schedule, psprintf("The %s field \"%s\" is not understood.", spec->name, field));
		return;
	}
}

/*
 * ParseCronSchedule fills the allowed values of each field, raising 22023
 * for a schedule pg_cron would not accept.
 */
void
ParseCronSchedule(const char *schedule, CronSchedule *cs)
{
	const char *expr = schedule;
	char	   *copy;
	char	   *fields[5];
	char	   *tok;
	char	   *save;
	int			n = 0;
	static const struct
	{
		const char *macro;
		const char *expansion;
	}			macros[] = {
		{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
		{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"},
		{"@hourly", "0 * * * *"},
	};

	memset(cs, 0, sizeof(CronSchedule));
	while (isspace((unsigned char) *expr))
		expr++;
	if (expr[0] == '@')
	{
		const char *found = NULL;

		for (int i = 0; i < lengthof(macros); i++)
			if (pg_strcasecmp(expr, macros[i].macro) == 0)
				found = macros[i].expansion;
		if (found == NULL)
			CronError(schedule, "Unknown @ shortcut.");
		expr = found;
	}
	copy = pstrdup(expr);
	for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
	{
		if (n == 5)
			CronError(schedule, "A schedule has five fields.");
		fields[n++] = tok;
	}
	if (n != 5)
		CronError(schedule, "A schedule has five fields.");
	ParseField(schedule, fields[0], &Fields[0], cs->minutes);
	ParseField(schedule, fields[1], &Fields[1], cs->hours);
	ParseField(schedule, fields[2], &Fields[2], cs->days);
	ParseField(schedule, fields[3], &Fields[3], cs->months);
	ParseField(schedule, fields[4], &Fields[4], cs->weekdays);
	if (cs->weekdays[7])
		cs->weekdays[0] = true;
	cs->any_day = fields[2][0] == '*';
	cs->any_weekday = fields[4][0] == '*';
}

/* DayMatches applies cron's rule: both day fields restricted means either */
static bool
DayMatches(const CronSchedule *cs, const struct tm *tm)
{
	bool		dom = cs->days[tm->tm_mday];
	bool		dow = cs->weekdays[tm->tm_wday];

	if (cs->any_day && cs->any_weekday)
		return true;
	if (cs->any_day)
		return dow;
	if (cs->any_weekday)
		return dom;
	return dom || dow;
}

/*
 * NextCronTime returns the first minute after 'after' (UTC) at which the
 * schedule fires, or DT_NOEND if it fires in none of the next five years
 * (for instance 31 February).
 */
TimestampTz
NextCronTime(const CronSchedule *cs, TimestampTz after)
{
	time_t		t = timestamptz_to_time_t(after);
	time_t		limit = t + (time_t) 5 * 366 * 24 * 3600;
	struct tm	tm;

	t = t - (t % 60) + 60;
	while (t < limit)
	{
		gmtime_r(&t, &tm);
		if (!cs->months[tm.tm_mon + 1])
		{
			tm.tm_mon += 1;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
			t = timegm(&tm);
			continue;
		}
		if (!DayMatches(cs, &tm))
		{
			tm.tm_mday += 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
			t = timegm(&tm);
			continue;
		}
		if (!cs->hours[tm.tm_hour])
		{
			tm.tm_hour += 1;
			tm.tm_min = tm.tm_sec = 0;
			t = timegm(&tm);
			continue;
		}
		if (!cs->minutes[tm.tm_min])
		{
			t += 60;
			continue;
		}
		return time_t_to_timestamptz(t);
	}
	return DT_NOEND;
}

/* pipeline.next_run_time(schedule, after): when a schedule fires next */
Datum
pipeline_next_run_time(PG_FUNCTION_ARGS)
{
	CronSchedule cs;
	TimestampTz next;

	ParseCronSchedule(text_to_cstring(PG_GETARG_TEXT_PP(0)), &cs);
	next = NextCronTime(&cs, PG_GETARG_TIMESTAMPTZ(1));
	if (TIMESTAMP_NOT_FINITE(next))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(next);
}
