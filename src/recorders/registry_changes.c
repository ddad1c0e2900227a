/*-------------------------------------------------------------------------
 *
 * src/recorders/registry_changes.c
 *
 * RegistryChanged, the one call each registry function makes after its
 * change, so that a change is recorded the same way everywhere: a new
 * config version when the configuration really changed (versions.c), the
 * pipeline's lineage refreshed (lineage), the first snapshot of a new
 * source (schema_history.c), and the audit entry with the configuration
 * (or state) before and after (audit_entries.c). It sits
 * above the three recorders it orchestrates, so that the audit log calls
 * neither versions nor lineage.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pipeline/recorders.h"
#include "pipeline/recorders/schema_history.h"

/*
 * RegistryChanged is the one call each registry function makes after its
 * change: it records a new config version when the configuration really
 * changed, refreshes the pipeline's lineage (create, alter), and appends
 * the audit entry with the configuration (or state) before and after.
 * value is the new watermark of reset, the value of any other action
 * (e.g. the cron expression of schedule, from issue 3), or NULL.
 */
void
RegistryChanged(const char *action, PipelineDef *def, const char *value)
{
	char	   *prev_config = NULL;
	char	   *config = NULL;
	int			version = 0;

	if (strcmp(action, "create") == 0 || strcmp(action, "alter") == 0)
	{
		version = RecordConfigVersion(def, &prev_config, &config);
		RefreshPipelineLineage(def);
		SnapshotRegisteredSource(def);
	}
	else if (strcmp(action, "drop") == 0)
		prev_config = CanonicalConfig(def);
	AuditRegistryChange(action, def, value, version, prev_config, config);
}
