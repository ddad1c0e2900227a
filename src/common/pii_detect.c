/*-------------------------------------------------------------------------
 *
 * src/common/pii_detect.c
 *
 * Recognising personal data in a value, for pipeline.suggest_pii: e-mail
 * addresses, phone numbers, payment card numbers (with the Luhn check),
 * IBANs (with their mod-97 checksum), national identifiers (US social
 * security numbers, UK national insurance numbers) and IP addresses. Each
 * test looks at one value's text and nothing else; the catalog of classes
 * they suggest is in api/privacy.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <ctype.h>

#include "pipeline/common.h"

/* IsEmail: local@domain.tld, a plausible local part and a dotted domain */
static bool
IsEmail(const char *s)
{
	const char *at = strchr(s, '@');
	const char *dot;
	int			tld = 0;

	if (at == NULL || at == s || strchr(at + 1, '@') != NULL)
		return false;
	for (const char *p = s; p < at; p++)
		if (!isalnum((unsigned char) *p) && strchr("._%+-'", *p) == NULL)
			return false;
	dot = strrchr(at + 1, '.');
	if (dot == NULL || dot == at + 1)
		return false;
	for (const char *p = at + 1; *p; p++)
		if (!isalnum((unsigned char) *p) && *p != '-' && *p != '.')
			return false;
	for (const char *p = dot + 1; *p; p++, tld++)
		if (!isalpha((unsigned char) *p))
			return false;
	return tld >= 2;
}

/*
 * Digits copies the digits of s into out (at most max), allowing only the
 * separators given between them; returns their number, -1 for any other
 * character.
 */
static int
Digits(const char *s, const char *separators, char *out, int max)
{
	int			n = 0;

	for (const char *p = s; *p; p++)
	{
		if (isdigit((unsigned char) *p))
		{
			if (n >= max)
				return -1;
			out[n++] = *p;
		}
		else if (strchr(separators, *p) == NULL)
			return -1;
	}
	return n;
}

/*
 * IsPhone: 7 to 15 digits with a leading + or at least one separator
 * (space, dash, dot, parentheses), so that a bare integer is not a phone
 */
static bool
IsPhone(const char *s)
{
	char		d[32];
	const char *p = s;
	int			n;

	if (*p == '+')
		p++;
	n = Digits(p, " -.()", d, sizeof(d));
	return n >= 7 && n <= 15 && (*s == '+' || strpbrk(s, " -.()") != NULL);
}

/* IsCard: 13 to 19 digits (spaces or dashes between) passing the Luhn check */
static bool
IsCard(const char *s)
{
	char		d[32];
	int			n = Digits(s, " -", d, sizeof(d));
	int			sum = 0;

	if (n < 13 || n > 19)
		return false;
	for (int i = 0; i < n; i++)
	{
		int			v = d[n - 1 - i] - '0';

		if (i % 2 == 1)
			v = v * 2 > 9 ? v * 2 - 9 : v * 2;
		sum += v;
	}
	return sum % 10 == 0;
}

/*
 * IsIban: two letters, two check digits, 11 to 30 letters or digits
 * (spaces allowed), whose mod-97 checksum (ISO 13616) is 1
 */
static bool
IsIban(const char *s)
{
	char		c[40];
	int			n = 0;
	int			rem = 0;

	for (const char *p = s; *p; p++)
	{
		if (*p == ' ')
			continue;
		if (!isalnum((unsigned char) *p) || n >= (int) sizeof(c))
			return false;
		c[n++] = toupper((unsigned char) *p);
	}
	if (n < 15 || n > 34 || !isalpha((unsigned char) c[0]) || !isalpha((unsigned char) c[1]) ||
		!isdigit((unsigned char) c[2]) || !isdigit((unsigned char) c[3]))
		return false;
	/* the first four characters move to the end; letters count as 10..35 */
	for (int i = 0; i < n; i++)
	{
		char		ch = c[(i + 4) % n];

		if (isdigit((unsigned char) ch))
			rem = (rem * 10 + (ch - '0')) % 97;
		else
			rem = (rem * 100 + (ch - 'A' + 10)) % 97;
	}
	return rem == 1;
}

/*
 * IsNationalId: a US social security number (AAA-GG-SSSS, area not 000,
 * 666 or 9xx, group and serial not zero) or a UK national insurance number
 * (two letters, six digits, A to D)
 */
static bool
IsNationalId(const char *s)
{
	size_t		len = strlen(s);

	if (len == 11 && s[3] == '-' && s[6] == '-')
	{
		int			area;

		for (int i = 0; i < 11; i++)
			if (i != 3 && i != 6 && !isdigit((unsigned char) s[i]))
				return false;
		area = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
		return area != 0 && area != 666 && area < 900 &&
			strncmp(s + 4, "00", 2) != 0 && strncmp(s + 7, "0000", 4) != 0;
	}
	if (len == 9)
	{
		for (int i = 0; i < 2; i++)
			if (!isalpha((unsigned char) s[i]))
				return false;
		for (int i = 2; i < 8; i++)
			if (!isdigit((unsigned char) s[i]))
				return false;
		return strchr("ABCDabcd", s[8]) != NULL;
	}
	return false;
}

/* IsIp: an IPv4 address in dotted-quad form, or an IPv6 address */
static bool
IsIp(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/*
 * PiiClassOf returns the class a value looks like (pii.email, pii.phone,
 * pii.card, pii.iban, pii.national_id, pii.ip), or NULL. The tests are
 * tried from the most to the least specific: a card number is not also
 * called a phone number.
 */
const char *
PiiClassOf(const char *value)
{
	char		v[256];
	size_t		len;

	/* trim; values longer than any of these forms are none of them */
	while (isspace((unsigned char) *value))
		value++;
	len = strlen(value);
	while (len > 0 && isspace((unsigned char) value[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(v))
		return NULL;
	memcpy(v, value, len);
	v[len] = '\0';

	if (IsEmail(v))
		return "pii.email";
	if (IsIban(v))
		return "pii.iban";
	if (IsCard(v))
		return "pii.card";
	if (IsNationalId(v))
		return "pii.national_id";
	if (IsIp(v))
		return "pii.ip";
	if (IsPhone(v))
		return "pii.phone";
	return NULL;
}
