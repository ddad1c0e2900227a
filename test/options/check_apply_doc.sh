#!/usr/bin/env bash
# test/options/check_apply_doc.sh [REPO_ROOT]
#
# Checks that docs/reference/apply.md lists the keys of pipeline.apply()
# exactly as the option table does: the options of src/catalog/options.c
# whose entry says ".in_spec = true", in the table's order, each a row
# "| `key` | ..." of the "## Keys" section of apply.md, and no other row.
# (The table itself is checked against the SQL by sql/14_options.sql.)
# Needs no server. Prints one line per check and, last, "N passed, N failed";
# exits 1 when a check failed.
set -uo pipefail
root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
table=$root/src/catalog/options.c
doc=$root/docs/reference/apply.md
passed=0
failed=0

ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }

# every entry has one .name and one .in_spec line, in that order
if ! entries=$(awk '
        /^[ \t]*\.name = "/ {
            if (name != "") { bad = 1 }
            match($0, /"[^"]*"/); name = substr($0, RSTART + 1, RLENGTH - 2)
        }
        /^[ \t]*\.in_spec = (true|false),/ {
            if (name == "") { bad = 1 }
            print name, ($0 ~ /true/ ? "true" : "false"); name = ""
        }
        END { if (bad || name != "") exit 1 }' "$table"); then
    not_ok "the option table in $table has an entry without .name or .in_spec"
fi
table_keys=$(awk '$2 == "true" { print $1 }' <<<"$entries")
doc_keys=$(awk '
        /^## / { in_keys = ($0 ~ /^## Keys[ \t]*$/); next }
        in_keys && /^\| `[^`]+` \|/ { match($0, /`[^`]+`/); print substr($0, RSTART + 1, RLENGTH - 2) }' "$doc")

if [ -z "$table_keys" ]; then
    not_ok "no option of $table is in_spec"
elif [ -z "$doc_keys" ]; then
    not_ok "$doc has no \"## Keys\" table"
elif [ "$table_keys" = "$doc_keys" ]; then
    ok "apply.md lists the $(wc -l <<<"$table_keys") keys of the option table, in its order"
else
    not_ok "apply.md's keys differ from the option table's (< table, > apply.md)"
    diff <(echo "$table_keys") <(echo "$doc_keys") | grep '^[<>]' | sed 's/^/    /'
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
