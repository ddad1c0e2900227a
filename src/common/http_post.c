/*-------------------------------------------------------------------------
 *
 * src/common/http_post.c
 *
 * One HTTP POST of a JSON document with libcurl (Debian's
 * libcurl4-openssl-dev), for the OpenLineage sender: http and https only,
 * no redirects followed, a bearer token when one is configured, a timeout
 * for the whole exchange, and an abort as soon as the process is asked to
 * die, so that a slow endpoint never holds up a shutdown.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"

#include "pipeline/common.h"

static bool curl_ready = false;

/* DiscardBody drops the endpoint's answer: only its status matters */
static size_t
DiscardBody(char *data, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

/* AbortOnDie ends a transfer when the process is asked to terminate */
static int
AbortOnDie(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	return ProcDiePending ? 1 : 0;
}

/*
 * HttpPostJson posts body to url with Content-Type application/json. It
 * returns true when the endpoint answered (its status in *status, 2xx or
 * not) and false, with the reason in *error, when there was no answer:
 * refused, unreachable, timed out or aborted.
 */
bool
HttpPostJson(const char *url, const char *body, const char *bearer, int timeout_ms,
			 long *status, char **error)
{
	CURL	   *curl;
	struct curl_slist *headers = NULL;
	char		errbuf[CURL_ERROR_SIZE];
	CURLcode	rc;

	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			elog(ERROR, "could not initialize libcurl");
		curl_ready = true;
	}
	curl = curl_easy_init();
	if (curl == NULL)
		elog(ERROR, "could not create a libcurl handle");
	headers = curl_slist_append(headers, "Content-Type: application/json");
	if (bearer && *bearer)
	{
		char	   *auth = psprintf("Authorization: Bearer %s", bearer);

		headers = curl_slist_append(headers, auth);
		pfree(auth);
	}
	errbuf[0] = '\0';
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body));
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "pg_pipeline/" PIPELINE_VERSION);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, DiscardBody);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, AbortOnDie);

	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	else
		*error = pstrdup(errbuf[0] ? errbuf : curl_easy_strerror(rc));
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	return rc == CURLE_OK;
}

/* HttpUrlValid tells whether url is one HttpPostJson may post to: http(s), parsable */
bool
HttpUrlValid(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	bool		ok;

	ok = u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		(strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
	if (scheme)
		curl_free(scheme);
	if (u)
		curl_url_cleanup(u);
	return ok;
}
