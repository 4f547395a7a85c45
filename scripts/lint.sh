#!/bin/sh
# Checks that need no review: unbounded C functions, man page syntax,
# formatting.  Exits non-zero on the first class of problem found.
set -u
rc=0
src=$(git ls-files '*.c' '*.h' 2>/dev/null || find shared smtpd plugins t -name '*.[ch]')
# STYLE.md 7: nothing unbounded.
bad=$(grep -nE '\<(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|sscanf)\(' $src 2>/dev/null)
if [ -n "$bad" ]; then
	echo "lint: unbounded or unchecked function:" >&2
	echo "$bad" >&2
	rc=1
fi
if command -v mandoc >/dev/null 2>&1; then
	for m in man/*.[0-9]; do
		[ -f "$m" ] || continue
		out=$(mandoc -Tlint -W warning "$m" 2>&1)
		if [ -n "$out" ]; then
			echo "$out" >&2
			rc=1
		fi
	done
fi
if command -v clang-format >/dev/null 2>&1 && [ -n "$src" ]; then
	if ! clang-format --dry-run --Werror $src >/dev/null 2>&1; then
		echo "lint: not clang-formatted:" >&2
		for f in $src; do
			clang-format --dry-run --Werror "$f" >/dev/null 2>&1 ||
			    echo "  $f" >&2
		done
		rc=1
	fi
fi
[ $rc = 0 ] && echo "lint: ok"
exit $rc
