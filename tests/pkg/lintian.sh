#!/usr/bin/env bash
# Runs lintian on the given .debs and decides whether they pass: no error (E:) at all, and every
# warning (W:) justified in the "## lintian" section of packaging/README.md, where each accepted
# tag is named in backquotes. Information (I:), pedantic (P:) and experimental (X:) tags are
# printed but do not fail. Exits 0 on a pass, 1 otherwise.
#
# Usage: tests/pkg/lintian.sh DEB...
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ $# -gt 0 ] || {
	echo "usage: $0 DEB..." >&2
	exit 2
}
command -v lintian >/dev/null || {
	echo "lintian: not installed (scripts/deps.sh installs it)" >&2
	exit 1
}

# The justified tags: `tag` words in the README section "## lintian" (up to the next "## ").
justified=$(awk '/^## / { on = ($0 ~ /^## lintian/) } on' "$ROOT/packaging/README.md" |
	grep -o '`[a-z0-9][a-z0-9.+-]*`' | tr -d '`' | sort -u)
[ -n "$justified" ] || echo "lintian: packaging/README.md has no '## lintian' section naming tags" >&2

# lintian refuses nothing as root, it only complains about it; the N: lines are explanations.
out=$(lintian --info --display-info --pedantic --display-experimental "$@" 2>&1 |
	grep -v -e '^N:' -e 'running with root privileges' || true)
printf '%s\n' "$out" | sed '/^$/d; s/^/lintian: /'

fail=0
while IFS= read -r line; do
	# "W: pkg: tag [context]" / "E: pkg: tag ..."
	sev=${line%%:*}
	tag=$(awk '{ print $3 }' <<<"$line")
	case $sev in
	E)
		echo "lintian: ERROR tag $tag is not allowed"
		fail=1
		;;
	W)
		if ! grep -qx -- "$tag" <<<"$justified"; then
			echo "lintian: warning $tag is neither fixed nor justified in packaging/README.md (## lintian)"
			fail=1
		fi
		;;
	esac
done < <(grep -E '^[EW]: ' <<<"$out" || true)

errors=$(grep -c '^E: ' <<<"$out" || true)
warnings=$(grep -c '^W: ' <<<"$out" || true)
echo "lintian: $errors errors, $warnings warnings ($(grep -cE '^[IPX]: ' <<<"$out" || true) info/pedantic/experimental)"
exit "$fail"
